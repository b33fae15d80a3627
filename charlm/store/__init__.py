"""Checkpoints on disk: the ``.npz`` layout, read and written atomically (``checkpoint``), and the
training run's resumable state (``runstate``).

Imports: ``charlm.network`` (for the weights' shapes), ``charlm.text``, ``charlm.config``.
"""
