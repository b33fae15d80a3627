"""Generation: drawing samples (``sampler``), beam search (``beam``), the interactive chooser
(``interactive``), stop strings (``stops``) and the check that a sample is new (``novelty``).

Imports: ``charlm.network``, ``charlm.kernels``, ``charlm.text``, ``charlm.store``.
"""
