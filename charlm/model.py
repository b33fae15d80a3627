"""The recurrent language model: its parameters and its forward and backward passes.

Plain numpy over the Numba kernels. The time loops live in ``kernels.recurrent``; everything that
can be done for all time steps at once is done here as one matrix product: the input projections
``x W_x`` (a row gather for layer 0, whose input is one-hot), the output layer, and every weight
gradient (``dW = X^T dZ`` over the T*B rows of a batch).

The sequences of a batch are independent until their gradients are summed, so a batch is split
into one shard of sequences per core, each run by its own thread over its own buffers with
single-threaded BLAS (the kernels release the GIL), and the shards' gradients are added at the end.
On two cores this beats letting OpenBLAS split each product: the recurrent products are small
((B, H) by (H, G*H), one per step), so its threads spend much of their time handing work over and
spinning, and the element-wise cell updates between them would run on one core.

Shapes: ``x``, ``y`` are (T, B) token ids (time-major; a target of -1 is padding). The recurrent
state is one array (L, S, B, H): L layers, S = 2 for the LSTM (h, c) and 1 otherwise.
Training memory: per layer and shard, T*b*(G*H + 3*H) floats for b sequences (gates, then dz in
their place; hs and cs or r*h; the dropout output), plus T*b*G*H for the GRU's dz, T*b*(2V + H) for
the output layer, and one copy of the parameters per shard beyond the first for its gradient.
"""
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .kernels import loss as loss_kernels
from .kernels import recurrent as rk
from .kernels.linalg import blas_threads, gather_rows, matmul, scatter_add_rows

GATES = {"rnn": 1, "gru": 3, "lstm": 4}
STATES = {"rnn": 1, "gru": 1, "lstm": 2}


def parameter_shapes(cell, vocab_size, hidden_size, num_layers):
    """Names and shapes of every weight, in checkpoint order (SPEC.md, "Checkpoint")."""
    width = GATES[cell] * hidden_size
    shapes = []
    for layer in range(num_layers):
        d_in = vocab_size if layer == 0 else hidden_size
        shapes += [(f"layers.{layer}.W_x", (d_in, width)),
                   (f"layers.{layer}.W_h", (hidden_size, width)),
                   (f"layers.{layer}.b", (width,))]
    return shapes + [("out.W", (hidden_size, vocab_size)), ("out.b", (vocab_size,))]


class FlatArrays:
    """Named arrays that are views into one flat buffer, so that the optimizer, the gradient norm
    and the checkpoint see a single array."""

    def __init__(self, shapes, flat=None, dtype=np.float32):
        self.shapes = list(shapes)
        size = sum(int(np.prod(s)) for _, s in self.shapes)
        self.flat = np.zeros(size, dtype) if flat is None else flat
        if self.flat.shape != (size,):
            raise ValueError(f"flat buffer has {self.flat.size} values, the shapes need {size}")
        self.views = {}
        offset = 0
        for name, shape in self.shapes:
            n = int(np.prod(shape))
            self.views[name] = self.flat[offset:offset + n].reshape(shape)
            offset += n

    def __getitem__(self, name):
        return self.views[name]

    def like(self):
        return FlatArrays(self.shapes, np.zeros_like(self.flat))


def init_parameters(params, cell, rng):
    """Initialise in place.

    Recurrent blocks orthogonal; input and output weights uniform with variance 1/fan-in, except
    layer 0's rows (one per character: an embedding folded into the gates), which get variance 1,
    like the pre-activations of an embedding-fed layer. With 1/H there, Adam needed hundreds of
    steps to tell the characters apart (tiny Shakespeare, 2x128 LSTM, 500 steps: training loss
    2.07 against 1.73). Biases zero except the gate that decides what to keep: the LSTM forget
    gate starts at +1 and the GRU update gate at -1, so that both start by carrying their state
    forward (Jozefowicz et al. 2015)."""
    dtype = params.flat.dtype
    for name, shape in params.shapes:
        w = params[name]
        if name.endswith(".b"):
            w[:] = 0.0
        elif name.endswith("W_h"):
            hidden = shape[0]
            for k in range(shape[1] // hidden):
                q, r = np.linalg.qr(rng.standard_normal((hidden, hidden)))
                w[:, k * hidden:(k + 1) * hidden] = (q * np.sign(np.diag(r))).astype(dtype)
        else:
            bound = np.sqrt(3.0 / (1 if name == "layers.0.W_x" else shape[0]))
            w[:] = rng.uniform(-bound, bound, shape).astype(dtype)
    num_layers = sum(1 for name, _ in params.shapes if name.endswith(".b")) - 1
    for layer in range(num_layers):
        b = params[f"layers.{layer}.b"]
        hidden = params[f"layers.{layer}.W_h"].shape[0]
        if cell == "lstm":
            b[hidden:2 * hidden] = 1.0
        elif cell == "gru":
            b[hidden:2 * hidden] = -1.0


def _cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


_pool, _pool_size = None, 0


def _run(tasks):
    """Call every task, the first in this thread and the others on a shared pool; return their
    results in order. BLAS runs single-threaded meanwhile: the tasks already fill the cores."""
    global _pool, _pool_size
    if len(tasks) == 1:
        return [tasks[0]()]
    if _pool_size < len(tasks) - 1:
        _pool, _pool_size = ThreadPoolExecutor(len(tasks) - 1, thread_name_prefix="charlm-shard"), len(tasks) - 1
    with blas_threads(1):
        futures = [_pool.submit(task) for task in tasks[1:]]
        try:
            first = tasks[0]()
        finally:
            rest = [f.result() for f in futures]
    return [first] + rest


class _Weights:
    """One layer's weights as the kernels take them: also W_h^T for the forward time loop, and for
    the GRU W_h split into contiguous blocks."""

    def __init__(self, params, cell, layer):
        self.w_x, self.w_h, self.b = (params[f"layers.{layer}.{k}"] for k in ("W_x", "W_h", "b"))
        self.w_ht = np.ascontiguousarray(self.w_h.T)
        if cell == "gru":
            H = self.w_h.shape[0]
            self.w_ru = np.ascontiguousarray(self.w_h[:, :2 * H])   # (H, 2H)
            self.w_c = np.ascontiguousarray(self.w_h[:, 2 * H:])    # (H, H)


class _Shard:
    """One thread's share of a batch, b sequences of T steps, and its buffers. The buffers are kept
    from batch to batch while (T, b) stays, so that a training step allocates almost nothing."""

    def __init__(self, net, T, b):
        L, H, V, G = net.num_layers, net.hidden_size, net.vocab_size, GATES[net.cell]
        dt = net.params.flat.dtype
        self.net = net
        self.gates = np.empty((L, T, b, G * H), dt)     # zx, then the activated gates
        self.hs = np.empty((L, T + 1, b, H), dt)        # h_0 .. h_T
        self.cs = np.empty((L, T + 1, b, H), dt) if net.cell == "lstm" else None
        self.rh = np.empty((L, T, b, H), dt) if net.cell == "gru" else None
        self.dropped = None                             # (L, T, b, H) outputs after dropout
        self.logits = np.empty((T * b, V), dt)
        self.dlogits = np.empty((T * b, V), dt)
        self.dz = np.empty((T, b, G * H), dt) if net.cell == "gru" else None   # others: in gates
        self.dh = np.empty((T, b, H), dt)               # gradient reaching a layer's outputs

    def forward(self, weights, x, state, masks):
        """Logits (T*b, V) without the output bias, for ids x (T, b) from state (L, S, b, H);
        returns the top layer's output (T, b, H)."""
        net = self.net
        T, b = x.shape
        inp = None
        for layer, w in enumerate(weights):
            gates, hs = self.gates[layer], self.hs[layer]
            if layer == 0:
                gather_rows(w.w_x, x.reshape(-1), gates.reshape(T * b, -1))   # one-hot input
            else:
                matmul(inp.reshape(T * b, -1), w.w_x, gates.reshape(T * b, -1))
            hs[0] = state[layer, 0]
            if net.cell == "rnn":
                rk.rnn_forward(gates, w.b, w.w_ht, hs)
            elif net.cell == "lstm":
                self.cs[layer, 0] = state[layer, 1]
                rk.lstm_forward(gates, w.b, w.w_ht, hs, self.cs[layer])
            else:
                rk.gru_forward(gates, w.b, w.w_ht, hs, self.rh[layer])
            inp = hs[1:]
            if masks is not None:
                if self.dropped is None:
                    self.dropped = np.empty((len(weights),) + inp.shape, inp.dtype)
                inp = np.multiply(inp, masks[layer], out=self.dropped[layer])
        matmul(inp.reshape(T * b, -1), net.params["out.W"], self.logits)
        return inp

    def final_state(self, out):
        """Write the state after the last step into out (L, S, b, H)."""
        out[:, 0] = self.hs[:, -1]
        if self.cs is not None:
            out[:, 1] = self.cs[:, -1]

    def train(self, weights, x, y, state, masks, scale, grads, new_state):
        """Forward and backward over this shard; writes the gradient of scale * (summed loss) into
        grads and the final state into new_state. Returns the summed loss."""
        net, p = self.net, self.net.params
        x = np.ascontiguousarray(x)
        T, b = x.shape
        H = net.hidden_size
        top = self.forward(weights, x, state, masks)
        self.final_state(new_state)
        loss = loss_kernels.softmax_cross_entropy(self.logits, p["out.b"], y.reshape(-1), scale,
                                                  self.dlogits, grads["out.b"])
        matmul(top.reshape(T * b, H).T, self.dlogits, grads["out.W"])
        dh = self.dh.reshape(T * b, H)
        matmul(self.dlogits, p["out.W"].T, dh)
        for layer in reversed(range(net.num_layers)):
            w, hs, gates = weights[layer], self.hs[layer], self.gates[layer]
            if masks is not None:
                self.dh *= masks[layer]
            h_prev = hs[:-1].reshape(T * b, H)
            dw_h = grads[f"layers.{layer}.W_h"]
            dz = (self.dz if net.cell == "gru" else gates).reshape(T * b, -1)
            if net.cell == "rnn":
                rk.rnn_backward(self.dh, w.w_h, gates)
                matmul(h_prev.T, dz, dw_h)
            elif net.cell == "lstm":
                rk.lstm_backward(self.dh, w.w_h, self.cs[layer], gates)
                matmul(h_prev.T, dz, dw_h)
            else:
                rk.gru_backward(self.dh, w.w_ru, w.w_c, hs, gates, self.dz)
                # the r and u blocks multiply h_{t-1}, the candidate's block r * h_{t-1}
                dw_h[:, :2 * H] = product(h_prev.T, np.ascontiguousarray(dz[:, :2 * H]))
                dw_h[:, 2 * H:] = product(self.rh[layer].reshape(T * b, H).T,
                                          np.ascontiguousarray(dz[:, 2 * H:]))
            dz.sum(axis=0, out=grads[f"layers.{layer}.b"])
            dw_x = grads[f"layers.{layer}.W_x"]
            if layer == 0:
                dw_x[:] = 0.0
                scatter_add_rows(dw_x, x.reshape(-1), dz)
            else:
                below = self.dropped[layer - 1] if masks is not None else self.hs[layer - 1, 1:]
                matmul(below.reshape(T * b, H).T, dz, dw_x)
                matmul(dz, w.w_x.T, dh)
        return loss

    def log_probs(self, weights, x, y, state, out, new_state):
        """out (T, b) = log p(y | x) (0 on padding); the final state into new_state."""
        x = np.ascontiguousarray(x)
        self.forward(weights, x, state, None)
        self.final_state(new_state)
        logp = np.empty(self.logits.shape[0], np.float64)
        loss_kernels.log_softmax_at(self.logits, self.net.params["out.b"], y.reshape(-1), logp)
        out[:] = logp.reshape(out.shape)


def product(a, b):
    """a @ b through :func:`kernels.linalg.matmul` (one BLAS for everything)."""
    out = np.empty((a.shape[0], b.shape[1]), np.result_type(a, b))
    matmul(a, b, out)
    return out


class Network:
    """A stack of recurrent layers and a softmax output, over a :class:`FlatArrays` of weights."""

    def __init__(self, cell, vocab_size, hidden_size, num_layers, params):
        self.cell, self.vocab_size = cell, vocab_size
        self.hidden_size, self.num_layers = hidden_size, num_layers
        self.params = params
        self._shards = {}          # (T, B) -> [(lo, hi, _Shard)], for the latest two shapes
        self._grads = []           # gradient buffers of the shards after the first

    def zero_state(self, batch_size):
        return np.zeros((self.num_layers, STATES[self.cell], batch_size, self.hidden_size),
                        self.params.flat.dtype)

    def _split(self, T, B):
        """The shards for a (T, B) batch: one per core, as equal as can be."""
        key = (T, B)
        if key not in self._shards:
            if len(self._shards) >= 2:
                del self._shards[next(iter(self._shards))]
            edges = np.linspace(0, B, min(_cores(), B) + 1).round().astype(int)
            self._shards[key] = [(lo, hi, _Shard(self, T, hi - lo)) for lo, hi in zip(edges[:-1], edges[1:])]
        return self._shards[key]

    def _weights(self):
        return [_Weights(self.params, self.cell, layer) for layer in range(self.num_layers)]

    def _masks(self, dropout, rng, T, b):
        """Inverted-dropout masks (L, T, b, H) for one shard: 0 or 1 / (1 - dropout)."""
        keep = rng.random((self.num_layers, T, b, self.hidden_size), dtype=np.float32) >= dropout
        return keep.astype(self.params.flat.dtype) * self.params.flat.dtype.type(1.0 / (1.0 - dropout))

    def forward(self, x, state, dropout=0.0, rng=None):
        """Logits (T*B, V) (row t*B + b: step t of sequence b) for token ids x (T, B) from state
        (L, S, B, H), and the new state. Dropout (inverted, rate ``dropout``) is applied to each
        layer's output, never to the recurrent connection."""
        T, B = x.shape
        shards = self._split(T, B)
        weights = self._weights()
        new_state = np.empty_like(state)
        masks = [self._masks(dropout, rng, T, hi - lo) if dropout > 0.0 else None
                 for lo, hi, _ in shards]
        _run([lambda s=s, lo=lo, hi=hi, m=m: s.forward(weights, np.ascontiguousarray(x[:, lo:hi]),
                                                       state[:, :, lo:hi], m)
              for (lo, hi, s), m in zip(shards, masks)])
        logits = np.empty((T, B, self.vocab_size), self.params.flat.dtype)
        for lo, hi, s in shards:
            s.final_state(new_state[:, :, lo:hi])
            logits[:, lo:hi] = s.logits.reshape(T, hi - lo, -1) + self.params["out.b"]
        return logits.reshape(T * B, -1), new_state

    def loss_and_gradients(self, x, y, state, grads, dropout=0.0, rng=None):
        """One training batch: returns (mean loss in nats, target count, new state) and writes
        the gradients of the mean loss into grads."""
        T, B = x.shape
        shards = self._split(T, B)
        weights = self._weights()
        count = int(np.count_nonzero(y >= 0))
        scale = 1.0 / count if count else 0.0
        while len(self._grads) < len(shards) - 1:
            self._grads.append(grads.like())
        new_state = np.empty_like(state)
        tasks = []
        for k, (lo, hi, s) in enumerate(shards):
            masks = self._masks(dropout, rng, T, hi - lo) if dropout > 0.0 else None
            tasks.append(lambda s=s, lo=lo, hi=hi, masks=masks, g=grads if k == 0 else self._grads[k - 1]:
                         s.train(weights, x[:, lo:hi], y[:, lo:hi], state[:, :, lo:hi], masks,
                                 scale, g, new_state[:, :, lo:hi]))
        losses = _run(tasks)
        for g in self._grads[:len(shards) - 1]:
            grads.flat += g.flat
        return sum(losses) * scale, count, new_state

    def log_probs(self, x, y, state):
        """Log-probabilities (T, B) of targets y given inputs x, without dropout; 0 on padding.
        Returns them with the new state."""
        T, B = x.shape
        shards = self._split(T, B)
        weights = self._weights()
        out = np.empty((T, B), np.float64)
        new_state = np.empty_like(state)
        _run([lambda s=s, lo=lo, hi=hi: s.log_probs(weights, x[:, lo:hi], y[:, lo:hi], state[:, :, lo:hi],
                                                    out[:, lo:hi], new_state[:, :, lo:hi])
              for lo, hi, s in shards])
        return out, new_state
