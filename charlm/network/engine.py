"""The no-grad forward pass: what scoring, validation, and every view of a trained network run.

It runs the training pass's forward kernels (``kernels.recurrent``) and keeps nothing they write
for a backward pass: the activated gates overwrite a scratch copy of the input projection, block
after block. It runs time-blocked, so its memory does not grow with the text: with
R = ``ROWS_PER_BLOCK`` rows (time steps x columns) per block, about R * (G*H + 2*L*H + V) float32
values (the input products, every layer's outputs and cell states, the logits), whatever the
length of the sequences.

Shapes: token ids ``x`` (T, B), time-major, one column per sequence; the recurrent state (L, S, B, H)
as ``Network.zero_state`` makes it, advanced in place.

Also here, for every no-grad caller: the softmax in numpy (:func:`log_softmax`, :func:`softmax`;
the Numba one is ``kernels.loss``), and ``BURN_IN``, how many characters a state is warmed on
before the characters that count (``charlm.scoring.scorer`` says how it was chosen).
"""
import numpy as np

from ..kernels import recurrent
from ..kernels.linalg import matmul
from . import inputs
from ..kernels.loss import log_softmax_at
from .parallel import cores, fan_out, shares, split

ROWS_PER_BLOCK = 4096  # time steps per block = ROWS_PER_BLOCK // columns: bounds the buffers
MIN_SHARE = 16         # fewest columns worth a thread of their own
BURN_IN = 128          # characters read from the zero state to warm it before a scored piece


def _shifted(z):
    """z in float64 minus its maximum along the last axis, so that no exp overflows."""
    z = np.asarray(z, np.float64)
    return z - z.max(axis=-1, keepdims=True)


def log_softmax(z):
    """float64 log softmax of logits z along the last axis."""
    z = _shifted(z)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def softmax(z):
    """float64 softmax of logits z along the last axis."""
    e = np.exp(_shifted(z))
    return e / e.sum(axis=-1, keepdims=True)


class Forward:
    """The forward pass on one thread, buffers reused from call to call."""

    def __init__(self, network):
        p = network.params
        self.network = network
        self.H, self.L = network.hidden_size, network.num_layers
        self.kernel = network.cell.kernel(recurrent, "forward")
        self.layers = [tuple(p[f"layers.{layer}.{k}"] for k in ("W_x", "W_h", "b"))
                       for layer in range(self.L)]       # views: they follow training's updates
        self.out_w, self.out_b = p["out.W"], p["out.b"]
        self.dtype = self.out_w.dtype
        self._buffers_key, self._buffers = None, None

    def _buffers_for(self, block, B):
        if self._buffers_key != (block, B):
            cell = self.network.cell
            hs = [np.empty((block + 1, B, self.H), self.dtype) for _ in range(self.L)]
            # the kernels' aux: the LSTM's c_0..c_T, the GRU's r * h_{t-1} (scratch); the rnn
            # never touches it
            aux = ([np.empty_like(h) for h in hs] if cell.num_states == 2 else
                   [np.empty((block, B, self.H), self.dtype)] * self.L if cell.reset_gated else hs)
            self._buffers = dict(
                hs=hs, aux=aux,
                gates=np.empty((block, B, cell.gates * self.H), self.dtype),   # zx, then scratch
                logits=np.empty((block * B, self.out_w.shape[1]), self.dtype),
            )
            self._buffers_key = (block, B)
        return self._buffers

    def blocks(self, x, state):
        """Run x (T, B) from state, a block of time steps at a time; yields (t0, t1, layers) for
        each block, where layers[l] = (hs, cs) holds layer l's h (and the LSTM's c) at steps
        t0..t1-1, (t1 - t0, B, H) each, valid until the next block."""
        T, B = x.shape
        block = max(1, min(T, ROWS_PER_BLOCK // B))
        buf = self._buffers_for(block, B)
        for t0 in range(0, T, block):
            t1 = min(T, t0 + block)
            yield t0, t1, self._block(x[t0:t1], state, buf)

    def _block(self, x, state, buf):
        steps, B = x.shape
        rows = steps * B
        lstm = state.shape[1] == 2
        gates = buf["gates"][:steps]
        below, layers = None, []
        for layer, (w_x, w_h, b) in enumerate(self.layers):
            hs, aux = buf["hs"][layer][:steps + 1], buf["aux"][layer][:steps + 1]
            if layer == 0:
                inputs.gather(w_x, x.reshape(-1), gates.reshape(rows, -1))   # one-hot input(s)
            else:
                matmul(below.reshape(rows, self.H), w_x, gates.reshape(rows, -1))
            hs[0] = state[layer, 0]
            if lstm:
                aux[0] = state[layer, 1]
            self.kernel(gates, b, w_h, hs, aux, True)       # BLAS products with W_h
            state[layer, 0] = hs[steps]
            if lstm:
                state[layer, 1] = aux[steps]
            below = hs[1:]
            layers.append((below, aux[1:] if lstm else below))
        return layers

    def logits(self, top):
        """Logits (rows, V) of the top layer's outputs (steps, B, H), without the output bias."""
        rows = top.shape[0] * top.shape[1]
        logits = self._buffers["logits"][:rows]
        matmul(top.reshape(rows, self.H), self.out_w, logits)
        return logits

    def log_probs(self, x, y, state, out):
        """out (T, B) = log p(y[t, b] | x[.., b]), 0 where y = -1, for int32 token ids x, y."""
        for t0, t1, layers in self.blocks(x, state):
            targets = y[t0:t1].reshape(-1)
            if (targets >= 0).any():     # burn-in blocks predict nothing that counts
                log_softmax_at(self.logits(layers[-1][0]), self.out_b, targets,
                               out[t0:t1].reshape(-1))

    def log_softmax(self, x, state, out):
        """out (T, B, V) float64 = log p(next token | x[.., b]) for every token of the vocabulary."""
        for t0, t1, layers in self.blocks(x, state):
            z = log_softmax(self.logits(layers[-1][0]).astype(np.float64) + self.out_b)
            out[t0:t1] = z.reshape(t1 - t0, x.shape[1], -1)

    def states(self, x, state, out):
        """out (L, S, T, B, H) = every layer's state after each step (h, and the LSTM's c)."""
        for t0, t1, layers in self.blocks(x, state):
            for layer, (hs, cs) in enumerate(layers):
                out[layer, 0, t0:t1] = hs
                if out.shape[1] == 2:
                    out[layer, 1, t0:t1] = cs


class Engine:
    """The columns of a batch split across the cores: one thread and one :class:`Forward` per
    share. Columns are independent, so the threads never wait on each other; letting OpenBLAS
    split each small recurrent product instead keeps its threads handing work over and leaves the
    element-wise cell updates on one core.

    With ``group`` (a ``distributed.Group``), the processes of a data-parallel run share the
    columns among all their threads exactly as one process with that many threads would, each
    running its own shares; every process gets the whole result (and state), summed over them.
    """

    def __init__(self, network, group=None):
        self.network, self.group = network, group
        self.forwards = [Forward(network) for _ in range(cores())]

    def zero_state(self, batch_size):
        return self.network.zero_state(batch_size)

    def log_probs(self, x, y, state):
        """(T, B) float64 log p(y | x), 0 where y = -1, for int32 ids x, y (T, B); advances
        state (L, S, B, H) in place."""
        out = np.zeros(x.shape, np.float64)
        self._run("log_probs", x, state, out, 1, y)
        return out

    def log_softmax(self, x, state):
        """(T, B, V) float64 log-probabilities of every next token after each input of x."""
        out = np.empty(x.shape + (self.network.vocab_size,), np.float64)
        self._run("log_softmax", x, state, out, 1)
        return out

    def states(self, x, state):
        """(L, S, T, B, H) every layer's state after each input of x."""
        n = self.network
        out = np.empty((n.num_layers, n.cell.num_states) + x.shape + (n.hidden_size,),
                       n.params.flat.dtype)
        self._run("states", x, state, out, out.ndim - 2)
        return out

    def _run(self, method, x, state, out, column_axis, y=None):
        """Call ``Forward.<method>`` on shares of the columns, one thread each."""
        B = x.shape[1]
        first, threads = ((0, len(self.forwards)) if self.group is None else
                          (self.group.first_thread, self.group.total_threads))
        count = shares(B, MIN_SHARE, threads)
        edges = split(B, count)
        mine = range(min(first, count), min(first + len(self.forwards), count))

        def run(forward, columns, x, y):
            index = (slice(None),) * column_axis + (columns,)
            part_state = np.ascontiguousarray(state[:, :, columns])
            part_out = np.zeros(out[index].shape, out.dtype)
            inputs = [np.ascontiguousarray(a[:, columns]) for a in (x, y) if a is not None]
            getattr(forward, method)(*inputs, part_state, part_out)
            state[:, :, columns] = part_state
            out[index] = part_out

        if mine:
            fan_out([lambda f=f, k=k: run(f, slice(edges[k], edges[k + 1]), x, y)
                     for f, k in zip(self.forwards, mine)])
        if self.group is not None:
            # the other processes' columns: zeros here, their values once summed
            others = np.ones(B, bool)
            others[edges[mine.start]:edges[mine.stop]] = False
            out[(slice(None),) * column_axis + (others,)] = 0.0
            state[:, :, others] = 0.0
            self.group.sum_in_place(out)
            self.group.sum_in_place(state)
