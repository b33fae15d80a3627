"""Text in: reading files (``textfile``), the vocabulary and its special tokens (``vocab``), a corpus
split into batches (``corpus``) and the memory-mapped form of a large one (``prepared``); word
tokens (``words``: how text is cut, the word vocabulary; ``wordcorpus``: a corpus read as words)
and labelled corpora (``labels``).

Imports: numpy, ``charlm.errors`` and ``charlm.kernels`` only; nothing here knows of networks.
"""
