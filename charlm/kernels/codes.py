"""The numbers by which the kernels that run every cell (generation's stack step) tell the cells
apart. The cell records of :mod:`charlm.network.celltypes` carry them; this module imports nothing,
so that reading the cell table does not load Numba."""
CELL_CODES = {"rnn": 0, "gru": 1, "lstm": 2}
