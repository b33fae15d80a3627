"""The cell table: one record for each recurrent cell, holding everything that differs between the
vanilla RNN, the GRU and the LSTM (docs/model.md). No other module branches on a cell's name:
the rest of charlm reads these records.

The kernels that implement a cell follow one naming rule, ``<name>_<role>`` in a kernel module, and
take the same arguments whatever the cell (see ``kernels.recurrent``), so that a caller picks them
with :meth:`Cell.kernel` and calls them alike.
"""
from dataclasses import dataclass

from ..kernels.codes import CELL_CODES


@dataclass(frozen=True)
class Cell:
    name: str
    code: int              # the cell's number inside kernels that run every cell (sampling)
    blocks: tuple          # gate blocks along the G*H axis of W_x, W_h and b, in order
    states: tuple          # the recurrent state carried from step to step
    keep_block: int        # the block whose bias starts at keep_bias (-1: none), so that the
    keep_bias: float       # cell starts by carrying its state forward (Jozefowicz et al. 2015)
    reset_gated: bool      # the candidate's recurrent product reads r * h_{t-1}, not h_{t-1}
    dz_in_gates: bool      # the backward pass writes dz over the activated gates

    @property
    def gates(self):
        """G: gate blocks of H columns each."""
        return len(self.blocks)

    @property
    def num_states(self):
        """S: 2 for the LSTM (h, c), 1 otherwise."""
        return len(self.states)

    def kernel(self, module, role):
        """This cell's kernel for ``role`` in a kernel module, e.g. ``kernel(recurrent, "forward")``."""
        return getattr(module, f"{self.name}_{role}")

    def initial_biases(self, b, hidden):
        """Set a layer's bias (G*H,) as training starts: zero, except the keep block."""
        b[:] = 0.0
        if self.keep_block >= 0:
            b[self.keep_block * hidden:(self.keep_block + 1) * hidden] = self.keep_bias


RNN = Cell("rnn", CELL_CODES["rnn"], ("h~",), ("h",), -1, 0.0, reset_gated=False, dz_in_gates=True)
GRU = Cell("gru", CELL_CODES["gru"], ("r", "u", "c~"), ("h",), 1, -1.0, reset_gated=True, dz_in_gates=False)
LSTM = Cell("lstm", CELL_CODES["lstm"], ("u", "f", "o", "c~"), ("h", "c"), 1, 1.0, reset_gated=False,
            dz_in_gates=True)

CELLS = {cell.name: cell for cell in (LSTM, GRU, RNN)}


def cell(name):
    """The record of the cell called ``name`` (``"rnn"``, ``"gru"`` or ``"lstm"``)."""
    return CELLS[name]
