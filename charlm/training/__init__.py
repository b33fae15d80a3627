"""Training: the optimisation loop, validation and checkpointing (``trainer``), the same run over
MPI ranks (``distributed``) and the progress it reports (``reporter``).

Imports: everything below it (``store``, ``network``, ``text``, ``scoring``), never ``generation``.
"""
