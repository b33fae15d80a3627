"""Reading a text with a trained model: its probability (``scorer``) and its missing characters
filled in (``fill``).

Imports: ``charlm.network``, ``charlm.kernels``, ``charlm.text``.
"""
