"""THE reference network of the tests: docs/model.md written out in plain numpy,
float64, one step at a time, sharing nothing with charlm's code (no cell table, no kernels).

Row-vector convention. Gate blocks along the G*H axis of W_x, W_h and b:

    rnn   [h~]            h_t = tanh(x W_x + h_{t-1} W_h + b)
    gru   [r, u, c~]      r = σ(z_r), u = σ(z_u) with z = x W_x + h_{t-1} W_h + b on those blocks,
                          c~ = tanh(x W_x[:,2H:] + (r ⊙ h_{t-1}) W_h[:,2H:] + b[2H:]),
                          h_t = u ⊙ c~ + (1 − u) ⊙ h_{t-1}
    lstm  [u, f, o, c~]   z = x W_x + h_{t-1} W_h + b,
                          c_t = σ(z_u) ⊙ tanh(z_c~) + σ(z_f) ⊙ c_{t-1}, h_t = σ(z_o) ⊙ tanh(c_t)
    out                   p(next) = softmax(h_top W_y + b_y)

Layer 0's input is one-hot: x W_x is the row W_x[token].

A word model's ``<UNK>`` also pays for its spelling (:func:`spelling_log_prob`, docs/words.md).
"""
import math

import numpy as np

GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def log_softmax(z):
    """log softmax over the last axis, float64."""
    z = np.asarray(z, np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _name(cell):
    """A cell's name, given the name or charlm's cell record."""
    return cell if isinstance(cell, str) else cell.name


def layer_step(cell, zx, h, c, w_h, b):
    """One step of one layer for B sequences: zx (B, G*H) the input projection x W_x of this step,
    h and c (B, H) the previous state (c: the LSTM's cell state, ignored otherwise), w_h (H, G*H),
    b (G*H,). Returns (h, c, activated gates (B, G*H)): the gates in block order, e.g. [u f o c~]
    for the LSTM and [r u c~] for the GRU; h for the rnn; c is returned unchanged by rnn and gru."""
    cell = _name(cell)
    H = w_h.shape[0]
    if cell == "rnn":
        h = np.tanh(zx + h @ w_h + b)
        return h, c, h
    if cell == "lstm":
        z = zx + h @ w_h + b
        u, f, o = sigmoid(z[:, :H]), sigmoid(z[:, H:2 * H]), sigmoid(z[:, 2 * H:3 * H])
        cand = np.tanh(z[:, 3 * H:])
        c = u * cand + f * c
        h = o * np.tanh(c)
        return h, c, np.concatenate([u, f, o, cand], axis=1)
    if cell == "gru":
        r = sigmoid(zx[:, :H] + h @ w_h[:, :H] + b[:H])
        u = sigmoid(zx[:, H:2 * H] + h @ w_h[:, H:2 * H] + b[H:2 * H])
        cand = np.tanh(zx[:, 2 * H:] + (r * h) @ w_h[:, 2 * H:] + b[2 * H:])
        h = u * cand + (1.0 - u) * h
        return h, c, np.concatenate([r, u, cand], axis=1)
    raise ValueError(f"no cell {cell!r}")


def _layer_count(params, prefix="layers"):
    layers = 0
    while True:
        try:
            params[f"{prefix}.{layers}.W_h"]
        except (KeyError, IndexError):
            return layers
        layers += 1


class ReferenceNetwork:
    """The whole network in float64: ``params`` is anything indexable by the checkpoint's names
    ("layers.0.W_x", ..., "out.W", "out.b"), e.g. a FlatArrays, a dict or an open .npz."""

    def __init__(self, cell, params):
        self.cell = _name(cell)
        self.L = _layer_count(params)
        self.layers = [tuple(np.asarray(params[f"layers.{l}.{k}"], np.float64)
                             for k in ("W_x", "W_h", "b")) for l in range(self.L)]
        self.w_y = np.asarray(params["out.W"], np.float64)
        self.b_y = np.asarray(params["out.b"], np.float64)
        self.H, self.V = self.w_y.shape
        if self.layers[0][1].shape != (self.H, GATES[self.cell] * self.H):
            raise ValueError(f"W_h has shape {self.layers[0][1].shape}, not that of a {self.cell}")

    def zero_state(self, batch_size):
        """{"h", "c"}: (L, B, H) each, zero (c is the LSTM's and stays zero for the others)."""
        return {"h": np.zeros((self.L, batch_size, self.H)),
                "c": np.zeros((self.L, batch_size, self.H))}

    def step(self, tokens, state):
        """Feed tokens (B,) int; updates state in place and returns the logits (B, V) of the next
        token."""
        tokens = np.asarray(tokens)
        below = None
        for l, (w_x, w_h, b) in enumerate(self.layers):
            zx = w_x[tokens] if l == 0 else below @ w_x
            h, c, _ = layer_step(self.cell, zx, state["h"][l], state["c"][l], w_h, b)
            state["h"][l], state["c"][l] = h, c
            below = h
        return below @ self.w_y + self.b_y

    def run(self, x):
        """Run token ids x (T, B) from the zero state: a dict of hs (L, T, B, H), every layer's h
        after each step, cs (L, T, B, H), the LSTM's cell states (None for the others), logits
        (T, B, V) and log_probs (T, B, V) = log p(next token | x[:t+1]) for every token."""
        x = np.asarray(x)
        T, B = x.shape
        state = self.zero_state(B)
        hs = np.empty((self.L, T, B, self.H))
        cs = np.empty((self.L, T, B, self.H))
        logits = np.empty((T, B, self.V))
        for t in range(T):
            logits[t] = self.step(x[t], state)
            hs[:, t], cs[:, t] = state["h"], state["c"]
        return dict(hs=hs, cs=cs if self.cell == "lstm" else None, logits=logits,
                    log_probs=log_softmax(logits))


def cloze_log_probs(cell, params, ids, eos=0, before=None):
    """The bidirectional cloze model (charlm.network.bidirectional) on one text of token ids c_1 .. c_n:
    (n, V) log p(c_t | ...) from the forward stack ("layers.*") after reading <EOS> c_1 .. c_{t-1}
    and the backward stack ("backward.layers.*") after reading <EOS> c_n .. c_{t+1}, through
    softmax([h_fwd ; h_bwd] W_y + b_y) with W_y = out.W (2H, V). Each stack runs as a
    ReferenceNetwork of its own, from the zero state. ``before``: what the forward stack reads
    instead of <EOS> before c_1 (ending with c_1's input), e.g. the text before a piece."""
    ids = list(ids)
    before = [eos] if before is None else list(before)
    w_y = np.asarray(params["out.W"], np.float64)
    H = w_y.shape[0] // 2
    tops = []
    for prefix, rows, inputs in (("layers", slice(0, H), before + ids[:-1]),
                                 ("backward.layers", slice(H, 2 * H), [eos] + ids[:0:-1])):
        L = _layer_count(params, prefix)
        stack = {f"layers.{l}.{k}": params[f"{prefix}.{l}.{k}"]
                 for l in range(L) for k in ("W_x", "W_h", "b")}
        stack.update({"out.W": w_y[rows], "out.b": np.zeros(w_y.shape[1])})
        tops.append(ReferenceNetwork(cell, stack).run(np.array(inputs)[:, None])["hs"][-1, :, 0])
    h_fwd = tops[0][len(before) - 1:]
    h_bwd = tops[1][::-1]                          # the backward stack's step n - t is c_t's
    return log_softmax(h_fwd @ w_y[:H] + h_bwd @ w_y[H:] + np.asarray(params["out.b"], np.float64))


def spelling_log_prob(npz, token):
    """log P(token | <UNK>) from the checkpoint's words.* entries, as docs/words.md states it."""
    chars = npz["words.chars"].tolist()
    logs = npz["words.char_log_probs"]
    s = float(npz["words.stop_prob"])
    lp = sum(logs[chars.index(c)] if c in chars else logs[-1] for c in token)
    return lp + (len(token) - 1) * math.log(1 - s) + math.log(s)
