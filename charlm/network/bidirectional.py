"""The bidirectional network: a cloze model that predicts each character from both sides.

Two recurrent stacks of the same cell and size read a sequence c_1 .. c_n: the forward stack from
the left, as the left-to-right model does, and the backward stack from the right. Character c_t is
predicted from the forward stack's top output after reading ``<EOS> c_1 .. c_{t-1}`` and the
backward stack's after reading ``<EOS> c_n .. c_{t+1}``:

    p(c_t | the rest) = softmax([h_fwd ; h_bwd] W_y + b_y),   W_y = ``out.W`` (2H, V)

(rows 0..H-1 of ``out.W`` multiply the forward stack's output, rows H..2H-1 the backward one's).
A character is never an input to its own prediction: this is a cloze objective over every
position, a model of p(c_t | the text around it), not of the text's probability. It can fill in
missing characters (``charlm.scoring.fill``); it cannot generate or score a text.

Checkpoint layout: the forward stack under the usual ``layers.{l}.*`` keys, the backward stack
under ``backward.layers.{l}.*`` (the same shapes), then ``out.W`` (2H, V) and ``out.b``.

Batches are the left-to-right model's: inputs ``x`` (T, B) and targets ``y`` (T, B), y[t] the
character after x[t]. The cloze targets are y's characters: a target ``<EOS>`` (a line's end in
lines mode) is nothing to fill and is dropped. Each column's targets are then a prefix of it, and
the backward stack reads that prefix reversed, from the zero state and ``<EOS>``: it starts at the
end of each line in lines mode, and at the end of each chunk of T characters in stream mode, where
it cannot carry the future from one batch to the next as the forward stack carries the past.
"""
import numpy as np

from ..text import corpus as data
from .engine import BURN_IN, Engine, log_softmax
from ..kernels import loss as loss_kernels
from ..kernels.linalg import matmul
from .shapes import BACKWARD, shapes_for  # noqa: F401  (the names callers import from here)
from .stack import Dropout, Network, Stack, stack_weights
from ..text.vocab import EOS_ID
# Validation: time steps x columns per forward call. Each call returns every layer's states,
# L*S*ROWS_PER_CALL*H floats (67 MB for a 2x256 LSTM). More columns share each step's read of the
# weights, so a call scores more characters per second the wider it is, up to this bound on its
# memory.
ROWS_PER_CALL = 16384


def network_for(config, vocab_size, params):
    """The training network of config over params: a :class:`Network` or a
    :class:`BidirectionalNetwork`."""
    kind = BidirectionalNetwork if config.bidirectional else Network
    return kind(config.cell, vocab_size, config.hidden_size, config.num_layers, params)


def cloze_targets(y):
    """y (T, B) with the target ``<EOS>`` dropped (-1): the characters to predict."""
    return np.where(y == EOS_ID, -1, y).astype(np.int32)


def reversal(y):
    """What the backward stack reads for cloze targets y (T, B), each column's targets a prefix of
    m of its steps: (xb, order), both (T, B). xb[:, j] is ``<EOS> y[m-1] .. y[1]`` (then ``<EOS>``
    padding), and order[t, j] the step of xb after which the backward stack has read exactly the
    characters after target t: m - 1 - t for t < m, t itself (padding) after. order is its own
    inverse, so that it both gathers the backward outputs to the targets and scatters their
    gradients back."""
    T = y.shape[0]
    m = np.count_nonzero(y >= 0, axis=0)[None, :]                    # (1, B)
    t = np.arange(T)[:, None]                                        # (T, 1)
    order = np.where(t < m, m - 1 - t, t)
    read = np.take_along_axis(y, np.clip(m - t, 0, T - 1), axis=0)   # xb[s] = y[m - s]
    xb = np.where((t >= 1) & (t < m), read, EOS_ID).astype(np.int32)
    return xb, order


class _Renamed:
    """One stack's weights under the names of a one-stack network (``layers.{l}.*``), with its
    rows of ``out.W`` as the output weights: what :class:`charlm.network.engine.Engine` reads."""

    def __init__(self, params, prefix, rows, num_layers):
        self.flat = params.flat
        self.arrays = {f"layers.{layer}.{k}": params[f"{prefix}.{layer}.{k}"]
                       for layer in range(num_layers) for k in ("W_x", "W_h", "b")}
        self.arrays["out.W"], self.arrays["out.b"] = params["out.W"][rows], params["out.b"]

    def __getitem__(self, name):
        return self.arrays[name]


class _Shard:
    """One thread's share of a batch: the two stacks and the output layer over their outputs."""

    def __init__(self, net, T, b):
        L, H, V = net.num_layers, net.hidden_size, net.vocab_size
        dt = net.params.flat.dtype
        self.net = net
        self.stacks = [Stack(net.cell, L, H, dt, T, b) for _ in range(2)]
        self.zero = net.zero_state(b)                     # where the backward stack starts
        self.joined = np.empty((T, b, 2 * H), dt)         # [h_fwd ; h_bwd] at each target
        self.logits = np.empty((T * b, V), dt)
        self.dlogits = np.empty((T * b, V), dt)
        self.djoined = np.empty((T * b, 2 * H), dt)

    def train(self, weights, x, y, state, masks, scale, grads, new_state):
        """Forward and backward over this shard for cloze targets y; writes the gradient of
        scale * (summed loss) into grads and the forward stack's final state into new_state.
        Returns the summed loss."""
        p, L, H = self.net.params, self.net.num_layers, self.net.hidden_size
        forward, backward = self.stacks
        x = np.ascontiguousarray(x)
        T, b = x.shape
        xb, order = reversal(y)
        columns = np.arange(b)
        mf, mb = (None, None) if masks is None else (masks[:L], masks[L:])
        self.joined[:, :, :H] = forward.forward(weights[0], x, state, mf)
        forward.final_state(new_state)
        self.joined[:, :, H:] = backward.forward(weights[1], xb, self.zero, mb)[order, columns]
        joined = self.joined.reshape(T * b, 2 * H)
        matmul(joined, p["out.W"], self.logits)           # logits without the bias
        loss = loss_kernels.softmax_cross_entropy(self.logits, p["out.b"], y.reshape(-1), scale,
                                                  self.dlogits, grads["out.b"])
        matmul(joined.T, self.dlogits, grads["out.W"])
        matmul(self.dlogits, p["out.W"].T, self.djoined)
        djoined = self.djoined.reshape(T, b, 2 * H)
        forward.dh[:] = djoined[:, :, :H]
        backward.dh[order, columns] = djoined[:, :, H:]
        forward.backward(weights[0], x, mf, grads)
        backward.backward(weights[1], xb, mb, grads, BACKWARD)
        return loss


class BidirectionalNetwork(Network):
    """The training pass of the cloze model, over a :class:`charlm.network.stack.FlatArrays` with
    the names of :func:`charlm.network.shapes.bidirectional_shapes`. Batches, threads, dropout and
    the carried state (the forward stack's) are :class:`charlm.network.stack.Network`'s."""

    shard_type = _Shard

    def _weights(self):
        return (stack_weights(self.params, self.num_layers),
                stack_weights(self.params, self.num_layers, BACKWARD))

    def dropout_masks(self, dropout, key, columns, T):
        """(2L, T, b, H): the forward stack's masks, then the backward stack's (which run along
        the backward stack's own steps), each a function of (key, stack, column)."""
        return np.concatenate([super(BidirectionalNetwork, self).dropout_masks(
            dropout, (*key, stack), columns, T) for stack in (0, 1)])

    def target_count(self, y):
        """How many cloze targets y (T, B) holds: its characters."""
        return super().target_count(cloze_targets(y))

    def loss_and_gradients(self, x, y, state, grads, dropout=Dropout(), mask_key=(0,),
                           first_column=0, count=None):
        """As :meth:`Network.loss_and_gradients`, for the cloze targets of y (a ``count`` given
        for a share of a larger batch counts those: :meth:`target_count`)."""
        return super().loss_and_gradients(x, cloze_targets(y), state, grads, dropout, mask_key,
                                          first_column, count)

    def stacks(self):
        """The two stacks as one-stack networks (:class:`charlm.network.engine.Engine` runs them), each
        with its rows of ``out.W`` as output weights and ``out.b``."""
        H, L = self.hidden_size, self.num_layers
        return [Network(self.cell, self.vocab_size, H, L, _Renamed(self.params, prefix, rows, L))
                for prefix, rows in (("layers", slice(0, H)), (BACKWARD, slice(H, 2 * H)))]


class Cloze:
    """The no-grad cloze pass of a :class:`BidirectionalNetwork`, over ``charlm.network.engine``."""

    def __init__(self, network):
        self.network = network
        forward, backward = network.stacks()
        self.forward, self.backward = Engine(forward), Engine(backward)
        self.w_fwd, self.w_bwd = forward.params["out.W"], backward.params["out.W"]
        self.out_b = network.params["out.b"]

    def forward_outputs(self, x, state):
        """(T, B, H): the forward stack's top output after each input of x (T, B), from state
        (L, S, B, H), which is advanced in place."""
        return self.forward.states(x, state)[-1, 0]

    def backward_outputs(self, y):
        """(T, B, H): for cloze targets y (T, B), the backward stack's top output after reading
        ``<EOS>`` and each column's targets after t, from the last back to t + 1."""
        xb, order = reversal(y)
        outputs = self.backward.states(xb, self.backward.zero_state(y.shape[1]))[-1, 0]
        return outputs[order, np.arange(y.shape[1])]

    def log_softmax(self, h_fwd, h_bwd):
        """(T, B, V) float64 log p(c_t | the rest) from the two stacks' outputs (T, B, H)."""
        T, B, H = h_fwd.shape
        z = (h_fwd.reshape(T * B, H) @ self.w_fwd + h_bwd.reshape(T * B, H) @ self.w_bwd)
        return log_softmax(z.astype(np.float64) + self.out_b).reshape(T, B, -1)

    def log_probs(self, x, y, state):
        """(T, B) float64 log p(y[t] | the rest of its column), 0 where y = -1, for inputs x and
        cloze targets y (T, B); the forward stack starts from state."""
        return _at(self.log_softmax(self.forward_outputs(x, state), self.backward_outputs(y)), y)


def _at(logp, y):
    """(T, B) logp[t, b, y[t, b]], 0 where y = -1."""
    picked = np.take_along_axis(logp, np.maximum(y, 0)[:, :, None], axis=2)[:, :, 0]
    return np.where(y >= 0, picked, 0.0)


def held_out_log_prob(network, mode, held_out, seq_len):
    """(log-probability in nats, characters) of the validation data under the cloze objective.

    lines mode: each held-out line (token ids) on its own, as in training. stream mode: the
    held-out ids cut into pieces of ``seq_len`` characters, the training chunk: the backward stack
    reads each piece from its end, as in training; the forward stack reads the ``BURN_IN``
    characters before the piece first (from the zero state, as ``charlm score --file`` warms its
    segments; all of them, from ``<EOS>``, for the pieces that start earlier), standing for the
    past that training carries."""
    cloze = Cloze(network)
    if mode == "lines":
        return _lines_log_prob(cloze, held_out)
    ids = np.concatenate([[EOS_ID], held_out]).astype(np.int32)     # ids[j] is c_j's input
    n = len(held_out)
    starts = range(0, n, seq_len)
    log_prob = sum(_pieces_log_prob(cloze, ids, [s], seq_len, s) for s in starts if s < BURN_IN)
    later = [s for s in starts if s >= BURN_IN]
    width = max(1, ROWS_PER_CALL // (BURN_IN + seq_len))
    for k in range(0, len(later), width):
        log_prob += _pieces_log_prob(cloze, ids, later[k:k + width], seq_len, BURN_IN)
    return log_prob, n


def _lines_log_prob(cloze, lines_ids):
    """Lines of similar length side by side, as many as ROWS_PER_CALL allows for the longest."""
    ordered = sorted(lines_ids, key=len)
    width = max(1, ROWS_PER_CALL // (len(ordered[-1]) + 1))
    log_prob = 0.0
    for start in range(0, len(ordered), width):
        [(x, y)] = data.pad_lines(ordered[start:start + width])
        state = cloze.forward.zero_state(x.shape[1])
        log_prob += float(cloze.log_probs(x, cloze_targets(y), state).sum())
    return log_prob, sum(len(ids) for ids in ordered)


def _pieces_log_prob(cloze, ids, starts, length, burn_in):
    """Summed log-probability of the pieces of ``length`` targets ids[s+1 ..] (s in starts), each
    a column whose forward stack first reads the burn_in inputs before the piece."""
    n = len(ids) - 1
    offsets = np.asarray(starts)[None, :] + np.arange(-burn_in, length)[:, None]   # (W+P, B)
    x = np.where(offsets < n, ids[np.minimum(offsets, n)], EOS_ID).astype(np.int32)
    targets = offsets[burn_in:] + 1
    y = np.where(targets <= n, ids[np.minimum(targets, n)], -1).astype(np.int32)
    state = cloze.forward.zero_state(len(starts))
    h_fwd = cloze.forward_outputs(x, state)[burn_in:]
    return float(_at(cloze.log_softmax(h_fwd, cloze.backward_outputs(y)), y).sum())
