"""The weight update of dynamic evaluation (Numba): one fused pass over a range of the flat
parameter buffer (``charlm.scoring.dynamic`` says what it is for and how its settings were chosen).

For each weight w, its gradient g on the segment just scored, its running mean square ms and its
trained value w0:

    ms = beta ms + (1 - beta) g^2
    w  = w - lr g / (sqrt(ms / (1 - beta^k)) + eps)       (k: the segments adapted on so far)
    w  = w + decay (w0 - w)                                (the pull toward the trained weights)

Each weight's update reads and writes only its own entries, so a buffer split into ranges among
threads gives the same bits whatever the split. With lr = 0 the weights stay exactly w0.

The threads hand in slices rather than a range of indices: a loop from 0 lets Numba drop its
negative-index check and LLVM vectorise the square roots and divisions.
"""
import numpy as np
from numba import njit

KERNEL = dict(cache=True, error_model="numpy", nogil=True)


@njit(**KERNEL)
def dynamic_update(w, g, ms, w0, lr, beta, correction, eps, decay):
    """Apply the update above to w in place (ms too), for 1-d arrays of one length;
    ``correction`` = 1 / (1 - beta^k)."""
    dt = w.dtype.type
    b, one_minus_b, c, e, step, d = (dt(beta), dt(1.0 - beta), dt(correction), dt(eps), dt(lr),
                                     dt(decay))
    for i in range(w.shape[0]):
        gi = g[i]
        m = b * ms[i] + one_minus_b * gi * gi
        ms[i] = m
        v = w[i] - step * gi / (np.sqrt(m * c) + e)
        w[i] = v + d * (w0[i] - v)
