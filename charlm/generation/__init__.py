"""Generation: drawing samples (``sampler``), beam search (``beam``), the interactive chooser
(``interactive``), stop strings (``stops``) and the check that a sample is new (``novelty``);
what sampling and beam search share: the options of a request as one record (``options``) and how
their kernels run, the weights packed per worker and the workers fanned out (``launch``).

Imports: ``charlm.network``, ``charlm.kernels``, ``charlm.text``, ``charlm.store``.
"""
