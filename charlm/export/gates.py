"""Gate layouts and the conversions between them.

charlm stores a layer as ``W_x`` (D, G*H), ``W_h`` (H, G*H), ``b`` (G*H,) with row vectors
(``z = x W_x + h W_h + b``) and the gate blocks along the G*H axis in the order of its cell table
(``charlm.network.celltypes``):

    rnn  [h~]            gru  [r, u, c~]            lstm  [u, f, o, c~]

ONNX and PyTorch store the transposes, (G*H, D) and (G*H, H), with two biases (one added to the
input product, one to the recurrent product), and their own block orders:

    ONNX     RNN [h]     GRU [z, r, h]              LSTM [i, o, f, c]
    PyTorch  RNN [h]     (nn.GRU: see below)        LSTM [i, f, g, o]

A layout below is a tuple with one (charlm block, sign) pair per block of the target, in the
target's order. The sign is for ONNX's GRU, whose new state is H = (1 - z) h~ + z H_prev where
charlm's is h = u c~ + (1 - u) h_prev: so z = 1 - u = σ(-a) for u = σ(a), and the z block holds
charlm's u block negated (weights and bias; a negation is exact in floating point). With
``linear_before_reset = 0`` the ONNX GRU's candidate reads (r ⊙ H_prev) R_h, as charlm's does.

PyTorch's nn.GRU computes n = tanh(x W_in + b_in + r ⊙ (h W_hn + b_hn)): the reset gate
multiplies the recurrent product and its bias, after the product. No weights make that charlm's
candidate tanh(x W + (r ⊙ h) W_h + b), so a GRU has no PyTorch layout here.
"""
import numpy as np

ONNX = {
    "rnn": ((0, 1),),
    "gru": ((1, -1), (0, 1), (2, 1)),
    "lstm": ((0, 1), (2, 1), (1, 1), (3, 1)),
}
TORCH = {
    "rnn": ((0, 1),),
    "lstm": ((0, 1), (1, 1), (3, 1), (2, 1)),
}


def to_layout(a, layout, hidden):
    """charlm's blocks along the last axis of a (..., G*H) rearranged (and signed) as layout."""
    blocks = [a[..., k * hidden:(k + 1) * hidden] for k, _ in layout]
    blocks = [block if sign > 0 else -block for block, (_, sign) in zip(blocks, layout)]
    return np.ascontiguousarray(np.concatenate(blocks, axis=-1))


def from_layout(a, layout, hidden):
    """The inverse of :func:`to_layout`: a (..., G*H) in layout's order back to charlm's."""
    blocks = [None] * len(layout)
    for j, (k, sign) in enumerate(layout):
        block = a[..., j * hidden:(j + 1) * hidden]
        blocks[k] = block if sign > 0 else -block
    return np.ascontiguousarray(np.concatenate(blocks, axis=-1))


def input_projection(w_x):
    """Layer 0's input weights (V, G*H), already in the target's layout, as an embedding table E
    (V, E_dim) whose rows are gathered and an operator's input weights W (G*H, E_dim), with
    E W^T = w_x exactly. The recurrent operators always multiply their input by W, so one of the
    two is an identity; the smaller is chosen, min(V, G*H) * G*H multiply-adds per token:

    - V <= G*H: E = I_V (the gathered row is the token's one-hot vector), W = w_x^T;
    - V > G*H:  E = w_x (the gathered row is the token's input product), W = I.

    Either way the product is exact: every term but one is a product with 0, the other with 1."""
    vocab_size, width = w_x.shape
    if vocab_size <= width:
        return np.eye(vocab_size, dtype=w_x.dtype), np.ascontiguousarray(w_x.T)
    return np.ascontiguousarray(w_x), np.eye(width, dtype=w_x.dtype)


def fold(table, weights):
    """The inverse of :func:`input_projection` for any embedding: w_x = E W^T (V, G*H). When one
    factor is an identity the other is taken as it is (bit for bit, signed zeros included);
    otherwise the product is computed in float64 and rounded once to float32."""
    if _is_identity(table):
        return np.ascontiguousarray(weights.T, dtype=np.float32)
    if _is_identity(weights):
        return np.ascontiguousarray(table, dtype=np.float32)
    return (table.astype(np.float64) @ weights.astype(np.float64).T).astype(np.float32)


def _is_identity(a):
    return a.ndim == 2 and a.shape[0] == a.shape[1] and np.array_equal(a, np.eye(a.shape[0]))


def plain_stack(ckpt, source, fmt):
    """The weights of a left-to-right stack as arrays: [(W_x, W_h, b)] per layer, then (W_y, b_y).
    Refuses, in one line, a model that the export formats cannot carry."""
    from ..errors import UsageError
    from ..network.stack import parameter_shapes
    config, weights = ckpt.config, ckpt.weights
    name = source or "this model"
    if config.bidirectional:
        raise UsageError(f"cannot export {name} to {fmt}: it is bidirectional (it predicts each "
                         "character from the text on both sides, so it has no next-token "
                         "probabilities for a runtime to compute); export a left-to-right model")
    names = [n for n, _ in parameter_shapes(config.cell, len(ckpt.vocab), config.hidden_size,
                                            config.num_layers)]
    extra = sorted(set(n for n, _ in weights.shapes) - set(names))
    if extra:
        raise UsageError(f"cannot export {name} to {fmt}: it holds weights beyond a stack of "
                         f"recurrent layers and an output layer ({', '.join(extra[:3])})")
    layers = [tuple(weights[f"layers.{l}.{k}"] for k in ("W_x", "W_h", "b"))
              for l in range(config.num_layers)]
    return layers, (weights["out.W"], weights["out.b"])
