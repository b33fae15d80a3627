"""Dropout masks as a function of (key, column, position) (Numba).

Each batch column's masks are the outputs of its own splitmix64 stream (Steele, Lea and Flood
2014): the stream's seed folds the key words (the run's seed, the step, ...) and the column's
global index through the splitmix64 finaliser, a bijection of 64-bit words whose outputs pass
statistical test batteries even for consecutive inputs; output i of the stream is the finaliser of
seed + (i + 1) * GOLDEN. The top 24 bits of an output are a uniform u on [0, 1) in steps of 2^-24,
and a unit is kept when u >= dropout.

Being counter-based, a mask element costs a few integer operations that vectorise, and any
column's masks can be made without the others': threads and processes each make their own
columns' masks, and a column's masks are the same however the batch is split.
"""
import numpy as np
from numba import njit

KERNEL = dict(cache=True, error_model="numpy", nogil=True)

GOLDEN = np.uint64(0x9E3779B97F4A7C15)        # 2^64 / the golden ratio, splitmix64's increment
UNIFORM_BITS = 24


@njit(**KERNEL)
def finalise(z):
    """splitmix64's output function."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(**KERNEL)
def stream_seed(key, column):
    """The seed of a column's stream: the key words (uint64) and the column folded in turn."""
    z = np.uint64(0)
    for word in key:
        z = finalise(z + finalise(word + GOLDEN))
    return finalise(z + finalise(np.uint64(column) + GOLDEN))


@njit(**KERNEL)
def fill_masks(key, columns, threshold, scale, out):
    """out (L, T, b, H)[l, t, k, j] = scale if the column's uniform number (l T + t) H + j, in
    units of 2^-24, is at least threshold, else 0; columns (b,) are the global column indices."""
    L, T, b, H = out.shape
    limit = np.uint64(threshold)
    shift = np.uint64(64 - UNIFORM_BITS)
    zero = out.dtype.type(0.0)
    for k in range(b):
        seed = stream_seed(key, columns[k])
        for l in range(L):
            for t in range(T):
                row = out[l, t, k]
                first = np.uint64((l * T + t) * H + 1)
                for j in range(H):
                    u = finalise(seed + (first + np.uint64(j)) * GOLDEN) >> shift
                    row[j] = scale if u >= limit else zero
