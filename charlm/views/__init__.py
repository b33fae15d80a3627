"""Views of a network's insides: its neurons, its gradients through time, the report page."""
