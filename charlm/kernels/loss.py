"""The softmax over the vocabulary in Numba, written once (:func:`shifted_exp`), and what is built on
it: the softmax cross-entropy of training, the log-probabilities of targets that scoring reads,
and a whole row's log softmax for the kernels that rank every token. (The numpy softmax, for
callers outside the kernels, is ``charlm.network.engine.log_softmax`` and ``softmax``.)

Targets are token ids; a target of -1 marks padding (lines mode) and contributes nothing. The output
layer's bias is added here rather than in a separate pass over the (N, V) logits.
"""
import numpy as np
from numba import njit

KERNEL = dict(cache=True, error_model="numpy", nogil=True)


@njit(inline="always", error_model="numpy")
def shifted_exp(z, b, e):
    """e = exp(z + b - m) with m = max(z + b), so that no exp overflows; returns (m, sum(e)),
    in float64: log sum exp(z + b) = m + log(sum(e))."""
    m = z[0] + b[0]
    for i in range(1, z.shape[0]):
        m = max(m, z[i] + b[i])
    s = 0.0
    for i in range(z.shape[0]):
        e[i] = np.exp(np.float64(z[i] + b[i] - m))
        s += e[i]
    return np.float64(m), s


@njit(inline="always", error_model="numpy")
def log_softmax_row(z, b, out):
    """out (V,) float64 = log softmax(z + b) for logits z and bias b (V,)."""
    m, s = shifted_exp(z, b, out)
    shift = m + np.log(s)
    for i in range(z.shape[0]):
        out[i] = np.float64(z[i] + b[i]) - shift


@njit(**KERNEL)
def log_softmax_at(logits, b, targets, out):
    """out[n] = log softmax(logits[n] + b)[targets[n]] for (N, V) logits; 0 where targets[n] < 0."""
    N, V = logits.shape
    e = np.empty(V, np.float64)
    for n in range(N):
        k = targets[n]
        if k < 0:
            out[n] = 0.0
            continue
        z = logits[n]
        m, s = shifted_exp(z, b, e)
        out[n] = z[k] + b[k] - m - np.log(s)


@njit(**KERNEL)
def softmax_cross_entropy(logits, b, targets, scale, dlogits, db):
    """Summed negative log-likelihood of the non-padding targets under softmax(logits + b),
    for (N, V) logits, returned in float64.

    Writes the gradient of scale * loss: dlogits = scale * (softmax(logits + b) - onehot(target)),
    zero on padding rows, and db = its column sums. (scale = 1 / count gives the mean loss's.)
    """
    N, V = logits.shape
    db[:] = 0.0
    total = 0.0
    for n in range(N):
        k = targets[n]
        d = dlogits[n]
        if k < 0:
            d[:] = 0.0
            continue
        z = logits[n]
        m, s = shifted_exp(z, b, d)
        total += m + np.log(s) - (z[k] + b[k])
        inv = scale / s
        for i in range(V):
            d[i] *= inv
        d[k] -= scale
        for i in range(V):
            db[i] += d[i]
    return total
