"""How the generation kernels run (``kernels.draw.generate``, ``kernels.beam_steps.beam_steps``):
the weights packed per worker in the layout a kernel reads, how many workers split each step, and
the fan-out of a kernel call over them. Written once for sampling and beam search.

- :func:`pack`: the network's weights as ``kernels.stack_step`` reads them, worker by worker.
- :func:`worker_choices`: two workers may split a step's hidden units when
  :func:`charlm.network.parallel.unit_workers` allows two and the units split evenly;
  :class:`Pace` then picks between two and one by their measured speed.
- :class:`Launcher`: runs a kernel call on the workers Pace picks, with the weights for that
  many, and records its speed.
"""
import functools
import time

import numpy as np

from ..kernels.barrier import SYNC_STRIDE, release
from ..kernels.stack_step import RowLayers, RowWeights, TransposedLayers, TransposedWeights
from ..network.parallel import fan_out, unit_workers



def pack(network, workers, transposed):
    """The weights of ``network`` for ``workers`` workers: per worker, the columns of its hidden
    units, gate block by gate block (the GRU's candidate block apart), as a
    :class:`~charlm.kernels.stack_step.RowWeights` for one row, or with ``transposed`` a
    :class:`~charlm.kernels.stack_step.TransposedWeights` for several."""
    p, cell = network.params, network.cell
    H, L, G = network.hidden_size, network.num_layers, cell.gates
    n = H // workers

    def split(w, gates):
        """(..., G*H) -> (workers, ..., gates*n): worker k gets units [k n, (k + 1) n) of each."""
        lead = w.shape[:-1]
        w = w.reshape(*lead, G, workers, n)[..., gates, :, :]
        return np.moveaxis(w, -2, 0).reshape(workers, *lead, -1)

    def part(gates):
        """Layer 0's input rows, the biases, the input weights of the layers above and the
        recurrent weights, for these gate blocks."""
        width = (gates.stop - gates.start) * n
        emb = np.ascontiguousarray(split(p["layers.0.W_x"], gates), np.float32)
        w_x = np.empty((workers, L - 1, H, width), np.float32)
        w_h = np.empty((workers, L, H, width), np.float32)
        b = np.empty((workers, L, width), np.float32)
        for l in range(L):
            if l > 0:
                w_x[:, l - 1] = split(p[f"layers.{l}.W_x"], gates)
            w_h[:, l] = split(p[f"layers.{l}.W_h"], gates)
            b[:, l] = split(p[f"layers.{l}.b"], gates)
        return RowLayers(emb, b, w_x, w_h)

    if cell.reset_gated:   # the candidate block reads r * h_{t-1}: kept apart
        gates, candidate = part(slice(0, 2)), part(slice(2, 3))
    else:
        gates, candidate = part(slice(0, G)), part(slice(0, 0))
    w_y = np.ascontiguousarray(p["out.W"], np.float32)
    b_y = np.ascontiguousarray(p["out.b"], np.float32)
    if not transposed:
        return RowWeights(gates, candidate, *split_output(w_y, b_y, workers, G))
    return TransposedWeights(transpose(gates), transpose(candidate), np.ascontiguousarray(w_y.T),
                             b_y)


def split_output(w_y, b_y, workers, gates):
    """The output layer for one row. One that has at least as many weights as a layer's
    recurrent product (G H x H: a word model's, not a character model's) is kept in half
    precision (``kernels.stack_step``), with one or two workers alike so that both give the same
    tokens, and in one part per worker: it is long enough for splitting it to pay for one more
    barrier a step. Each part is ceil(V / parts) columns, the last padded with zeros:
    w_y (parts, H, width), b_y (parts * width,)."""
    H, V = w_y.shape
    large = narrow_output(H, V, gates)
    parts = workers if large else 1
    width = -(-V // parts)
    w_parts = np.zeros((parts, H, width), np.float16 if large else np.float32)
    b_parts = np.zeros(parts * width, np.float32)
    b_parts[:V] = b_y
    for k in range(parts):
        columns = w_y[:, k * width:(k + 1) * width]
        w_parts[k, :, :columns.shape[1]] = columns
    return (w_parts.view(np.uint16) if large else w_parts), b_parts


def narrow_output(hidden, vocab_size, gates):
    """Whether generation reads the output layer in half precision (:func:`split_output`)."""
    return vocab_size >= gates * hidden


def logits_scratch(rows, vocab_size):
    """The logits of ``kernels.draw.generate``: (2, rows, V + 1), a worker's each, or both halves
    of a split output layer in the first."""
    return np.empty((2, rows, vocab_size + 1), np.float32)


def transpose(layers):
    """:class:`RowLayers` as :class:`TransposedLayers`: each layer's products as one
    ``matmul_nt`` (rows of the weights along the input): W_h^T for layer 0, whose input product
    is a row gather, and [W_x; W_h]^T for the layers above, which read [x | h]."""
    wt0 = np.ascontiguousarray(np.swapaxes(layers.w_h[:, 0], 1, 2))     # (workers, width, H)
    stacked = np.concatenate([layers.w_x, layers.w_h[:, 1:]], axis=2)   # (workers, L-1, 2H, width)
    wt_up = np.ascontiguousarray(np.swapaxes(stacked, 2, 3))            # (workers, L-1, width, 2H)
    return TransposedLayers(layers.emb, layers.b, wt0, wt_up)


def worker_choices(hidden):
    """The worker counts that may split the steps of a network of ``hidden`` units (see the
    module docstring): (2, 1) or (1,)."""
    split = unit_workers(hidden) >= 2 and hidden % 2 == 0
    return (2, 1) if split else (1,)


class Pace:
    """Chooses a worker count from the measured speed of each. Two workers are faster on idle
    cores; when another process holds one core, their barriers wait for a preempted partner and
    one worker is faster. Both give the same tokens, so the choice can change at any chunk."""

    RECHECK = 8                # every this many chunks, the slower choice is measured again
    TRIAL_STEPS = 64           # the most steps a measuring chunk runs: the slower choice may be
                               # three times slower (a word model's, on one worker)

    def __init__(self, choices):
        self.rates = dict.fromkeys(choices)
        self.chunks = 0

    def steps_for(self, steps):
        """How many of ``steps`` the next chunk should run: fewer when it measures a choice."""
        if len(self.rates) == 1:
            return steps
        measuring = None in self.rates.values() or (self.chunks + 1) % self.RECHECK == 0
        return min(steps, self.TRIAL_STEPS) if measuring else steps

    def pick(self):
        untried = [k for k, r in self.rates.items() if r is None]
        if untried:
            return untried[0]
        self.chunks += 1
        ranked = sorted(self.rates, key=self.rates.get, reverse=True)
        return ranked[-1] if self.chunks % self.RECHECK == 0 else ranked[0]

    def record(self, workers, steps, seconds):
        self.rates[workers] = steps / max(seconds, 1e-9)


class Launcher:
    """Runs one generation's kernel calls on ``network``: each call on the workers :class:`Pace`
    picks among ``choices``, with the weights packed for that many (``transposed``: the layout
    for several rows). ``tables``: a dict of packed weights by (workers, layout), which
    generations of the same network may share."""

    def __init__(self, network, transposed, choices=(1,), tables=None):
        self.network, self.transposed = network, transposed
        self.pace = Pace(choices)
        self.tables = {} if tables is None else tables

    def weights(self, workers):
        key = (workers, self.transposed)
        if key not in self.tables:
            self.tables[key] = pack(self.network, workers, self.transposed)
        return self.tables[key]

    def run(self, kernel, args, forced):
        """kernel(cell, weights, *args, sync, worker, workers) on every worker at once; returns
        worker 0's result, the steps run after the ``forced`` ones (the rate Pace records counts
        both)."""
        workers = self.pace.pick()
        weights = self.weights(workers)
        sync = np.zeros(workers * SYNC_STRIDE, np.int64)
        call = functools.partial(kernel, self.network.cell.code, weights, *args, sync)
        start = time.perf_counter()
        if workers == 1:        # no BLAS in these kernels, so no BLAS setting to take
            ran = call(0, 1)
        else:
            ran = fan_out([functools.partial(call, k, workers) for k in range(workers)],
                          on_failure=functools.partial(release, sync))[0]
        self.pace.record(workers, forced + ran, time.perf_counter() - start)
        return ran
