"""Fused optimizer updates over the flat parameter buffer (Numba).

Every update takes ``scale``, the gradient-clipping factor min(1, clip / ||g||), so that clipping
costs no extra pass over the gradients.
"""
import numpy as np
from numba import njit

KERNEL = dict(cache=True, error_model="numpy", nogil=True)


@njit(**KERNEL)
def squared_norm(g):
    """sum(g^2), accumulated in float64."""
    s = 0.0
    for i in range(g.size):
        x = np.float64(g[i])
        s += x * x
    return s


@njit(**KERNEL)
def sgd_update(p, g, lr, scale):
    step = p.dtype.type(lr * scale)
    for i in range(p.size):
        p[i] -= step * g[i]


@njit(**KERNEL)
def rmsprop_update(p, g, v, lr, scale, alpha, eps):
    """v = alpha v + (1 - alpha) g^2;  p -= lr g / (sqrt(v) + eps)."""
    dt = p.dtype.type
    a, one_minus_a, s, e, lr_ = dt(alpha), dt(1.0 - alpha), dt(scale), dt(eps), dt(lr)
    for i in range(p.size):
        gi = g[i] * s
        v[i] = a * v[i] + one_minus_a * gi * gi
        p[i] -= lr_ * gi / (np.sqrt(v[i]) + e)


@njit(**KERNEL)
def adam_update(p, g, m, v, lr, scale, beta1, beta2, eps, t):
    """Adam (Kingma & Ba) at step t >= 1, with the bias corrections folded into the step size:
    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
    p -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps sqrt(1 - b2^t))."""
    dt = p.dtype.type
    c2 = np.sqrt(1.0 - beta2 ** t)
    step = dt(lr * c2 / (1.0 - beta1 ** t))
    e = dt(eps * c2)
    b1, b2, s = dt(beta1), dt(beta2), dt(scale)
    one_minus_b1, one_minus_b2 = dt(1.0 - beta1), dt(1.0 - beta2)
    for i in range(p.size):
        gi = g[i] * s
        m[i] = b1 * m[i] + one_minus_b1 * gi
        v[i] = b2 * v[i] + one_minus_b2 * gi * gi
        p[i] -= step * m[i] / (np.sqrt(v[i]) + e)


@njit(**KERNEL)
def average_update(average, p, decay):
    """average = decay average + (1 - decay) p: an exponential moving average of the weights."""
    d = average.dtype.type(1.0 - decay)
    for i in range(p.size):
        average[i] += d * (p[i] - average[i])
