"""Matrix products for the Python side of the model (Numba), and control of their BLAS threads.

numpy and SciPy each bundle their own OpenBLAS, and Numba's ``np.dot`` calls SciPy's. Mixing the two
in one training step cost more than a third of the speed here: after each call, one library's
worker threads keep spinning on both cores while the other library runs. Every product of the
model therefore goes through this module, so that one BLAS thread pool does all the work.

The model splits a training batch across the cores itself (see ``model.py``); while it does, each
of its threads must run BLAS single-threaded, or the two would contend for the same cores:
:func:`blas_threads` sets that for the duration of a block.
"""
import contextlib
import ctypes
import threading

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def matmul(a, b, out):
    """out = a @ b for 2-d arrays, each C- or Fortran-contiguous (a transposed view is fine)."""
    np.dot(a, b, out)


@njit(cache=True, nogil=True)
def gather_rows(w, rows, out):
    """out[n] = w[rows[n]]: the product of one-hot rows with w, for (N,) ids and (N, D) out."""
    for n in range(rows.shape[0]):
        out[n] = w[rows[n]]


@njit(cache=True, nogil=True)
def scatter_add_rows(dw, rows, dz):
    """dw[rows[n]] += dz[n]: the gradient of :func:`gather_rows` with respect to w."""
    N, G = dz.shape
    for n in range(N):
        r = rows[n]
        for j in range(G):
            dw[r, j] += dz[n, j]


def _openblas_thread_functions():
    """(get, set) of the thread count of the BLAS behind Numba's np.dot, or None if it is not
    an OpenBLAS we can reach (then :func:`blas_threads` does nothing)."""
    try:
        from scipy.linalg import cython_blas
        lib = ctypes.CDLL(cython_blas.__file__)    # symbol lookup also searches its dependencies
    except (ImportError, OSError):
        return None
    for prefix in ("scipy_openblas", "openblas"):
        try:
            get, set_ = getattr(lib, prefix + "_get_num_threads"), getattr(lib, prefix + "_set_num_threads")
        except AttributeError:
            continue
        get.restype, set_.argtypes = ctypes.c_int, [ctypes.c_int]
        return get, set_
    return None


_BLAS_THREADS = _openblas_thread_functions()
_blas_lock = threading.RLock()   # the setting is process-wide: one block at a time changes it


@contextlib.contextmanager
def blas_threads(n):
    """Run the block with BLAS limited to n threads, then restore the previous setting."""
    if _BLAS_THREADS is None:
        yield
        return
    get, set_ = _BLAS_THREADS
    with _blas_lock:
        previous = get()
        set_(n)
        try:
            yield
        finally:
            set_(previous)
