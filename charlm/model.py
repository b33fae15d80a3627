"""The recurrent language model: its parameters and its forward and backward passes.

Plain numpy over the Numba kernels. The time loops live in ``kernels.recurrent``; everything that
can be done for all time steps at once is done here as one matrix product: the input projections
``x W_x`` (a row gather for layer 0, whose input is one-hot), the output layer, and every weight
gradient (``dW = X^T dZ`` over the T*B rows of a batch).

Shapes: ``x``, ``y`` are (T, B) token ids (time-major; a target of -1 is padding). The recurrent
state is one array (L, S, B, H): L layers, S = 2 for the LSTM (h, c) and 1 otherwise.
"""
from dataclasses import dataclass

import numpy as np

from .kernels import loss as loss_kernels
from .kernels.linalg import matmul
from .kernels import recurrent as rk

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
    """Initialise in place: orthogonal recurrent blocks, uniform input and output weights with
    variance 1/fan-in (1/H for layer 0's embedding rows), zero biases except the gate that decides
    what to keep: the LSTM forget gate starts at +1 and the GRU update gate at -1, so that both
    start by carrying their state forward (Jozefowicz et al. 2015)."""
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
            fan_in = shape[1] // GATES[cell] if name == "layers.0.W_x" else shape[0]
            bound = np.sqrt(3.0 / fan_in)
            w[:] = rng.uniform(-bound, bound, shape).astype(dtype)
    num_layers = sum(1 for name, _ in params.shapes if name.endswith(".b")) - 1
    for layer in range(num_layers):
        b = params[f"layers.{layer}.b"]
        hidden = params[f"layers.{layer}.W_h"].shape[0]
        if cell == "lstm":
            b[hidden:2 * hidden] = 1.0
        elif cell == "gru":
            b[hidden:2 * hidden] = -1.0


def product(a, b):
    """a @ b through :func:`kernels.linalg.matmul` (one BLAS for everything)."""
    out = np.empty((a.shape[0], b.shape[1]), np.result_type(a, b))
    matmul(a, b, out)
    return out


# ---- the cells: forward and backward through one layer ------------------------------------------

def _previous_h(h0, hs):
    """(T*B, H) rows of h_0 .. h_{T-1}, the inputs of the recurrent products."""
    return np.concatenate([h0[None], hs[:-1]]).reshape(-1, h0.shape[-1])


def layer_forward(cell, zx, w_h, state):
    """Run one layer over zx (T, B, G*H) from state (S, B, H); returns hs (T, B, H), the cache
    for the backward pass, and the final state (S, B, H)."""
    T, B, width = zx.shape
    H = w_h.shape[0]
    hs = np.empty((T, B, H), zx.dtype)
    if cell == "rnn":
        rk.rnn_forward(zx, w_h, state[0], hs)
        return hs, (), hs[-1][None].copy()
    gates = np.empty((T, B, width), zx.dtype)
    if cell == "lstm":
        cs = np.empty((T, B, H), zx.dtype)
        rk.lstm_forward(zx, w_h, state[0], state[1], hs, cs, gates)
        return hs, (cs, gates), np.stack([hs[-1], cs[-1]])
    rh = np.empty((T, B, H), zx.dtype)
    w_ru, w_c = np.ascontiguousarray(w_h[:, :2 * H]), np.ascontiguousarray(w_h[:, 2 * H:])
    rk.gru_forward(zx, w_ru, w_c, state[0], hs, gates, rh)
    return hs, (gates, rh), hs[-1][None].copy()


def layer_backward(cell, dhs, w_h, state, hs, cache, dw_h):
    """Backward through one layer: returns dz (T, B, G*H) and writes dW_h into dw_h."""
    T, B, H = hs.shape
    dz = np.empty((T, B, GATES[cell] * H), hs.dtype)
    h_prev = _previous_h(state[0], hs)
    if cell == "rnn":
        rk.rnn_backward(dhs, w_h, hs, dz)
    elif cell == "lstm":
        cs, gates = cache
        rk.lstm_backward(dhs, w_h, state[1], cs, gates, dz)
    else:
        gates, rh = cache
        w_ru, w_c = np.ascontiguousarray(w_h[:, :2 * H]), np.ascontiguousarray(w_h[:, 2 * H:])
        rk.gru_backward(dhs, w_ru, w_c, state[0], hs, gates, dz)
        dz2 = dz.reshape(T * B, -1)
        dw_h[:, :2 * H] = product(h_prev.T, np.ascontiguousarray(dz2[:, :2 * H]))
        dw_h[:, 2 * H:] = product(rh.reshape(T * B, H).T, np.ascontiguousarray(dz2[:, 2 * H:]))
        return dz
    matmul(h_prev.T, dz.reshape(T * B, -1), dw_h)
    return dz


# ---- the whole network ---------------------------------------------------------------------------

@dataclass
class Trace:
    """What the forward pass keeps for the backward pass of one batch."""
    inputs: list        # per layer: its input, (T, B) ids for layer 0, else (T, B, H) after dropout
    outputs: list       # per layer: hs (T, B, H)
    caches: list
    masks: list         # per layer: dropout mask (T, B, H) or None
    top: np.ndarray     # (T*B, H): the input of the output layer


class Network:
    """A stack of recurrent layers and a softmax output, over a :class:`FlatArrays` of weights."""

    def __init__(self, cell, vocab_size, hidden_size, num_layers, params):
        self.cell, self.vocab_size = cell, vocab_size
        self.hidden_size, self.num_layers = hidden_size, num_layers
        self.params = params

    def zero_state(self, batch_size):
        return np.zeros((self.num_layers, STATES[self.cell], batch_size, self.hidden_size),
                        self.params.flat.dtype)

    def forward(self, x, state, dropout=0.0, rng=None):
        """Logits (T*B, V) for token ids x (T, B) from state (L, S, B, H); also the new state and
        the trace for :meth:`backward`. Dropout (inverted, rate ``dropout``) is applied to each
        layer's output, never to the recurrent connection."""
        p = self.params
        T, B = x.shape
        trace = Trace([], [], [], [], None)
        new_state = np.empty_like(state)
        inp = x
        for layer in range(self.num_layers):
            w_x, w_h, b = p[f"layers.{layer}.W_x"], p[f"layers.{layer}.W_h"], p[f"layers.{layer}.b"]
            if layer == 0:
                zx = np.take(w_x, x, axis=0)                      # (T, B, G*H): one-hot input
            else:
                zx = product(inp.reshape(T * B, -1), w_x).reshape(T, B, -1)
            zx += b
            hs, cache, new_state[layer] = layer_forward(self.cell, zx, w_h, state[layer])
            mask = None
            out = hs
            if dropout > 0.0:
                keep = rng.random(hs.shape, dtype=np.float32) >= dropout
                mask = keep.astype(hs.dtype) * hs.dtype.type(1.0 / (1.0 - dropout))
                out = hs * mask
            trace.inputs.append(inp)
            trace.outputs.append(hs)
            trace.caches.append(cache)
            trace.masks.append(mask)
            inp = out
        trace.top = inp.reshape(T * B, -1)
        logits = product(trace.top, p["out.W"])
        logits += p["out.b"]
        return logits, new_state, trace

    def backward(self, dlogits, state, trace, grads):
        """Write the gradient of the loss into grads (a FlatArrays like params), given dlogits
        (T*B, V) and the state and trace of the forward pass."""
        p = self.params
        T, B, H = trace.outputs[0].shape
        matmul(trace.top.T, dlogits, grads["out.W"])
        dlogits.sum(axis=0, out=grads["out.b"])
        d_out = product(dlogits, p["out.W"].T).reshape(T, B, H)        # gradient reaching the top output
        for layer in reversed(range(self.num_layers)):
            mask = trace.masks[layer]
            dhs = d_out * mask if mask is not None else d_out
            w_x = p[f"layers.{layer}.W_x"]
            dz = layer_backward(self.cell, dhs, p[f"layers.{layer}.W_h"], state[layer],
                                trace.outputs[layer], trace.caches[layer],
                                grads[f"layers.{layer}.W_h"])
            dz2 = dz.reshape(T * B, -1)
            dz2.sum(axis=0, out=grads[f"layers.{layer}.b"])
            dw_x = grads[f"layers.{layer}.W_x"]
            if layer == 0:
                dw_x[:] = 0.0
                loss_kernels.scatter_add_rows(dw_x, trace.inputs[0].reshape(-1), dz2)
            else:
                inp = trace.inputs[layer].reshape(T * B, -1)
                matmul(inp.T, dz2, dw_x)
                d_out = product(dz2, w_x.T).reshape(T, B, H)

    def loss_and_gradients(self, x, y, state, grads, dropout=0.0, rng=None):
        """One training batch: returns (mean loss in nats, target count, new state) and writes
        the gradients into grads."""
        logits, new_state, trace = self.forward(x, state, dropout, rng)
        dlogits = np.empty_like(logits)
        loss, count = loss_kernels.softmax_cross_entropy(logits, y.reshape(-1), dlogits)
        self.backward(dlogits, state, trace, grads)
        return loss, count, new_state

    def log_probs(self, x, y, state):
        """Log-probabilities (T, B) of targets y given inputs x, without dropout; 0 on padding.
        Returns them with the new state."""
        logits, new_state, _ = self.forward(x, state)
        out = np.empty(logits.shape[0], np.float64)
        loss_kernels.log_softmax_at(logits, y.reshape(-1), out)
        return out.reshape(y.shape), new_state
