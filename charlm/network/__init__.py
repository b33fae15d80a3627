"""The network: cell records (``celltypes``), the training pass of a stack (``stack``), the no-grad
pass (``engine``), the bidirectional cloze network (``bidirectional``) and the rule for how many
cores a piece of work gets (``parallel``). The arithmetic is in ``charlm.kernels``.

Imports: ``charlm.kernels``, ``charlm.text``, ``charlm.errors``.
"""
