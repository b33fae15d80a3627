"""Gradients through time: how much the loss at one step depends on the top layer's output k steps
earlier, for k = 0..K, averaged over a text (docs/views-and-report.md). The vanishing gradient made
visible: a plain RNN's curve falls off with k far faster than a gated cell's, once trained.

Definition. The text c_1..c_n is read as inputs x_1 = <EOS>, x_{s+1} = c_s; h_s is the top layer's
output after reading x_s, and L_t = -log p(c_t | h_t). Then

    norms[k] = mean over t = k+1..n of || dL_t / dh_{t-k} ||_2,      counts[k] = n - k

the partial derivative with respect to the top layer's output (the LSTM's c_{t-k} held as a
separate variable: only the paths through h_{t-k} count). Only the top layer's recurrence carries
h_{t-k} forward to L_t; the layers below do not read it.

Method, all in float64 on a float64 copy of the weights:
1. charlm's no-grad pass (``network.engine.Engine.states``) gives every layer's h (and c) for the
   text; the top layer's activated gates are recomputed from them, all steps at once, by one call
   of the forward kernel (``kernels.recurrent``) with each step as a column of its own (its input,
   h_{s-1}, c_{s-1}).
2. dL_t/dh_t = (softmax(h_t W_y + b_y) - onehot(c_t)) W_y^T for every t: row t of an (n, H) array.
3. k = 1..K: one step back through the top layer's cell for all targets t at once: the training
   backward kernel run for one step (T = 1), the rows as its columns, each row's gradient at the
   new state carried in (dh, and the LSTM's dc) and the gradient at the previous state carried
   out. Row r holds target t = r + k + 1's gradient at position r + 1, so the rows that remain
   valid are a prefix and every step reads the gates of positions 1..n-k in order. (One backward
   pass through time would sum the targets' gradients; each norm needs each target's alone.)
Cost: about 2 K n G H^2 multiply-adds (K = 100, n = 2,000, a 256-unit LSTM: 1e11).
"""
import numpy as np

from ..kernels import recurrent
from ..network.engine import Engine, softmax
from ..network.parallel import fan_out, shares, split
from ..network.shapes import FlatArrays, parameter_shapes
from ..network.stack import Network, init_for_seed, product
from ..text.vocab import EOS_ID

MIN_SHARE = 64      # fewest rows worth a thread of their own in a step back


def float64_copy(network):
    """The same network with its weights in float64."""
    p = network.params
    params = FlatArrays(p.shapes, p.flat.astype(np.float64), dtype=np.float64)
    return Network(network.cell, network.vocab_size, network.hidden_size, network.num_layers,
                   params)


def fresh_network(cell, vocab_size, hidden_size, num_layers, seed):
    """A network as ``charlm train --seed seed`` initialises it, before its first step."""
    params = FlatArrays(parameter_shapes(cell, vocab_size, hidden_size, num_layers))
    init_for_seed(params, cell, seed)
    return Network(cell, vocab_size, hidden_size, num_layers, params)


def mean_norms(network, pieces, max_distance):
    """(norms, counts) as :func:`distance_norms` gives them, over several pieces of token ids,
    each read from the zero state: each distance's mean over every (t, k) pair of the pieces."""
    total = np.zeros(max_distance + 1)
    counts = np.zeros(max_distance + 1, np.int64)
    for ids in pieces:
        norms, n = distance_norms(network, ids, max_distance)
        total += np.nan_to_num(norms) * n
        counts += n
    with np.errstate(invalid="ignore"):
        return np.where(counts > 0, total / np.maximum(counts, 1), np.nan), counts


def distance_norms(network, ids, max_distance):
    """(norms (K+1,) float64, counts (K+1,) int) for the text of token ids (n,), K =
    max_distance. Distances with no target (k >= n) have count 0 and norm NaN."""
    net = float64_copy(network)
    ids = np.asarray(ids, np.int32)
    n = len(ids)
    if n == 0:
        raise ValueError("an empty text has no gradients")
    top = TopLayer(net, ids)
    dh = _output_gradients(net, top.h, ids)
    dc = np.zeros_like(dh)        # L_t does not read c_t but through h_t
    dh_next, dc_next = np.empty_like(dh), np.empty_like(dc)
    norms = np.full(max_distance + 1, np.nan)
    counts = np.zeros(max_distance + 1, np.int64)
    last = min(max_distance, n - 1)
    for k in range(last + 1):
        m = n - k                 # targets t = k+1..n, in rows 0..m-1
        norms[k] = np.sqrt((dh[:m] ** 2).sum(axis=1)).mean()
        counts[k] = m
        if k < last:
            top.step_back(dh, dc, m, dh_next, dc_next)
            dh, dh_next, dc, dc_next = dh_next, dh, dc_next, dc
    return norms, counts


class TopLayer:
    """The top layer's states and gates at every position of a text, float64, and the step back
    through its cell. Position i (0-based) is the step that reads x_{i+1} and outputs h_{i+1}."""

    def __init__(self, net, ids):
        n, H = len(ids), net.hidden_size
        x = np.concatenate([[EOS_ID], ids[:-1]]).astype(np.int32)[:, None]     # (n, 1)
        states = Engine(net).states(x, net.zero_state(1))[:, :, :, 0]            # (L, S, n, H)
        top = net.num_layers - 1
        p = net.params
        w_x, w_h, b = (p[f"layers.{top}.{k}"] for k in ("W_x", "W_h", "b"))
        if top == 0:
            zx = w_x[x[:, 0]]                                                    # (n, G*H)
        else:
            zx = product(np.ascontiguousarray(states[top - 1, 0]), w_x)
        self.h = np.ascontiguousarray(states[top, 0])                            # h_1..h_n
        self.c = np.ascontiguousarray(states[top, -1])     # the LSTM's c_1..c_n (others: h)
        self.h_prev = np.concatenate([np.zeros((1, H)), self.h[:-1]])            # h_0..h_{n-1}
        self.c_prev = np.concatenate([np.zeros((1, H)), self.c[:-1]])
        self.w_h = np.ascontiguousarray(w_h)                                     # (H, G*H)
        # the forward kernel, run for one step with the n positions as columns: it writes the
        # activated gates over zx (and reads c_{s-1} from, or writes r*h_{s-1} to, aux[0]:
        # whichever the cell uses)
        gates = np.ascontiguousarray(zx).reshape(1, n, -1)
        hs = np.stack([self.h_prev, self.h])
        aux = np.stack([self.c_prev, self.c])
        net.cell.kernel(recurrent, "forward")(gates, b, self.w_h, hs, aux, True)   # BLAS
        self.gates = gates[0]                                                    # (n, G*H)
        self.dz_apart = not net.cell.dz_in_gates
        self.kernel = net.cell.kernel(recurrent, "backward")

    def step_back(self, dh, dc, m, dh_out, dc_out):
        """Rows 1..m-1 of (dh, dc), the gradients at positions 1..m-1, one step back: written to
        rows 0..m-2 of (dh_out, dc_out)."""
        edges = split(m - 1, shares(m - 1, MIN_SHARE)) + 1

        def run(lo, hi):
            # one step of the backward kernel over rows lo..hi-1 as columns: the gradient from
            # above is this step's dh, the carry in is zero for h and dc for the LSTM's c
            gates = self.gates[lo:hi][None].copy()      # rnn and lstm write dz over the gates
            hs = np.stack([self.h_prev[lo:hi], self.h[lo:hi]])
            cs = np.stack([self.c_prev[lo:hi], self.c[lo:hi]])
            dz = np.empty_like(gates) if self.dz_apart else gates
            dh_prev, dc_prev = dh_out[lo - 1:hi - 1], dc_out[lo - 1:hi - 1]
            dh_prev[:] = 0.0
            dc_prev[:] = dc[lo:hi]
            self.kernel(dh[lo:hi][None], self.w_h, hs, cs, gates, dz, dh_prev, dc_prev)

        fan_out([lambda lo=lo, hi=hi: run(lo, hi) for lo, hi in zip(edges[:-1], edges[1:])])


def _output_gradients(net, h, targets):
    """(n, H): row t is dL_t/dh_t for L_t = -log softmax(h_t W_y + b_y)[targets[t]]."""
    p = net.params
    probs = softmax(product(h, p["out.W"]) + p["out.b"])
    probs[np.arange(len(targets)), targets] -= 1.0
    return product(probs, np.ascontiguousarray(p["out.W"].T))
