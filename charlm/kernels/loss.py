"""Softmax cross-entropy over the vocabulary, and the embedding-gradient scatter (Numba).

Targets are token ids; a target of -1 marks padding (lines mode) and contributes nothing.
"""
import numpy as np
from numba import njit

KERNEL = dict(cache=True, error_model="numpy", nogil=True)


@njit(**KERNEL)
def log_softmax_at(logits, targets, out):
    """out[n] = log softmax(logits[n])[targets[n]] for (N, V) logits; 0 where targets[n] < 0.

    log p_k = z_k - m - log(sum_i exp(z_i - m)), with m = max(z) so that no exp overflows.
    """
    N, V = logits.shape
    for n in range(N):
        k = targets[n]
        if k < 0:
            out[n] = 0.0
            continue
        m = logits[n, 0]
        for i in range(1, V):
            m = max(m, logits[n, i])
        s = 0.0
        for i in range(V):
            s += np.exp(np.float64(logits[n, i] - m))
        out[n] = logits[n, k] - m - np.log(s)


@njit(**KERNEL)
def softmax_cross_entropy(logits, targets, dlogits):
    """Mean negative log-likelihood over the non-padding targets of (N, V) logits.

    Writes dlogits = (softmax(logits) - onehot(targets)) / count, zero on padding rows, and
    returns (mean loss in nats, count).
    """
    N, V = logits.shape
    count = 0
    for n in range(N):
        if targets[n] >= 0:
            count += 1
    if count == 0:
        dlogits[:] = 0.0
        return 0.0, 0
    scale = 1.0 / count
    total = 0.0
    for n in range(N):
        k = targets[n]
        if k < 0:
            dlogits[n, :] = 0.0
            continue
        m = logits[n, 0]
        for i in range(1, V):
            m = max(m, logits[n, i])
        s = 0.0
        for i in range(V):
            e = np.exp(np.float64(logits[n, i] - m))
            dlogits[n, i] = e
            s += e
        total += m + np.log(s) - logits[n, k]
        inv = scale / s
        for i in range(V):
            dlogits[n, i] *= inv
        dlogits[n, k] -= scale
    return total * scale, count


@njit(**KERNEL)
def scatter_add_rows(dw, rows, dz):
    """dw[rows[n]] += dz[n]: the gradient of a row gather (layer 0's one-hot input product)."""
    N, G = dz.shape
    for n in range(N):
        r = rows[n]
        for j in range(G):
            dw[r, j] += dz[n, j]
