"""The network: cell records (``celltypes``), the weights' names, shapes and flat buffer
(``shapes``), the training pass of a stack (``stack``), the no-grad pass with the numpy softmax
(``engine``), layer 0's input with a labelled model's label (``inputs``), the bidirectional cloze
network (``bidirectional``) and the rule for how many threads a piece of work gets (``parallel``). The arithmetic is in ``charlm.kernels``.

Imports: ``charlm.kernels``, ``charlm.text``, ``charlm.errors``; ``celltypes`` and ``shapes``
import nothing of charlm but each other, so that the checkpoint reader can use them alone.
"""
