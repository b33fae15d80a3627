"""Matrix products for the Python side of the model (Numba), and control of their BLAS threads.

numpy and SciPy each bundle their own OpenBLAS, and Numba's ``np.dot`` calls SciPy's. Mixing the two
in one training step costs speed: after each call, one library's worker threads keep spinning on
the cores while the other library runs. Every product of the network therefore goes through this
module, so that one BLAS thread pool does all the work.

The network splits a batch across the cores itself (``charlm.network.parallel``); while it does, each
of its threads must run BLAS single-threaded, or the two would contend for the same cores:
:func:`blas_threads` sets that for the duration of a block.
"""
import contextlib
import ctypes
import functools
import threading

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def matmul(a, b, out):
    """out = a @ b for 2-d arrays, each C- or Fortran-contiguous (a transposed view is fine)."""
    np.dot(a, b, out)


PRODUCT = dict(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc", "contract", "nsz"})


@njit(**PRODUCT)
def matmul_nt(a, wt, out):
    """out = a @ wt.T for a (M, K), wt (N, K), out (M, N), all C-contiguous: the small products
    of the recurrent time loops and the beam search, where M is a shard's few sequences.

    At those shapes a single-threaded OpenBLAS repacks the whole weight matrix on every call;
    this loop does not, and ``benchmarks/bench_products.py`` measures the two side by side at the
    time loop's shapes. Each output is a dot product along K, 4 rows of a by 4 rows of wt at a
    time: 16 sums in registers for 8 loads (2 by 4 blocks need 6 loads for 8 sums); the last
    M % 4 rows go one at a time. The loop over column blocks is the outer one, so that each block
    of wt is read from memory once while the rows of a come from cache. ``fastmath`` lets LLVM
    split each sum into vector lanes, so the summation order differs from a plain loop's (as it
    does in any BLAS)."""
    M, K = a.shape
    N = wt.shape[0]
    m4 = M - M % 4
    zero = out.dtype.type(0.0)
    for j in range(0, N, 4):
        # a ragged last block repeats row N - 1: its extra sums are computed and written twice
        j1, j2, j3 = min(j + 1, N - 1), min(j + 2, N - 1), min(j + 3, N - 1)
        w0, w1, w2, w3 = wt[j], wt[j1], wt[j2], wt[j3]
        for i in range(0, m4, 4):
            a0, a1, a2, a3 = a[i], a[i + 1], a[i + 2], a[i + 3]
            s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = zero
            s20 = s21 = s22 = s23 = s30 = s31 = s32 = s33 = zero
            for k in range(K):
                x0, x1, x2, x3 = a0[k], a1[k], a2[k], a3[k]
                y0, y1, y2, y3 = w0[k], w1[k], w2[k], w3[k]
                s00 += x0 * y0
                s01 += x0 * y1
                s02 += x0 * y2
                s03 += x0 * y3
                s10 += x1 * y0
                s11 += x1 * y1
                s12 += x1 * y2
                s13 += x1 * y3
                s20 += x2 * y0
                s21 += x2 * y1
                s22 += x2 * y2
                s23 += x2 * y3
                s30 += x3 * y0
                s31 += x3 * y1
                s32 += x3 * y2
                s33 += x3 * y3
            o0, o1, o2, o3 = out[i], out[i + 1], out[i + 2], out[i + 3]
            o0[j], o0[j1], o0[j2], o0[j3] = s00, s01, s02, s03
            o1[j], o1[j1], o1[j2], o1[j3] = s10, s11, s12, s13
            o2[j], o2[j1], o2[j2], o2[j3] = s20, s21, s22, s23
            o3[j], o3[j1], o3[j2], o3[j3] = s30, s31, s32, s33
    for i in range(m4, M):
        row_nt(a[i], wt, out[i])


@njit(**PRODUCT)
def row_nt(x, wt, out):
    """out = wt @ x for one row x (K,), wt (N, K): eight rows of wt at a time."""
    K = x.shape[0]
    N = wt.shape[0]
    zero = out.dtype.type(0.0)
    for j in range(0, N, 8):
        j1, j2, j3 = min(j + 1, N - 1), min(j + 2, N - 1), min(j + 3, N - 1)
        j4, j5, j6, j7 = min(j + 4, N - 1), min(j + 5, N - 1), min(j + 6, N - 1), min(j + 7, N - 1)
        w0, w1, w2, w3, w4, w5, w6, w7 = wt[j], wt[j1], wt[j2], wt[j3], wt[j4], wt[j5], wt[j6], wt[j7]
        s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = zero
        for k in range(K):
            v = x[k]
            s0 += v * w0[k]
            s1 += v * w1[k]
            s2 += v * w2[k]
            s3 += v * w3[k]
            s4 += v * w4[k]
            s5 += v * w5[k]
            s6 += v * w6[k]
            s7 += v * w7[k]
        out[j7], out[j6], out[j5], out[j4] = s7, s6, s5, s4
        out[j3], out[j2], out[j1], out[j] = s3, s2, s1, s0


@njit(cache=True, nogil=True)
def recurrent_product(a, w, out, blas):
    """out = a @ W for the recurrent weights W, given as the product reads them: w = W^T (N, K)
    for :func:`matmul_nt`, or w = W (K, N) itself for BLAS (when ``blas``). Both C-contiguous."""
    if blas:
        np.dot(a, w, out)
    else:
        matmul_nt(a, w, out)


@njit(cache=True, nogil=True)
def one_hot_rows(w, rows, out):
    """out[n] = w[rows[n]]: the product of one-hot rows with w, for (N,) ids and (N, D) out."""
    for n in range(rows.shape[0]):
        out[n] = w[rows[n]]


@njit(cache=True, nogil=True)
def scatter_add_rows(dw, rows, dz):
    """dw[rows[n]] += dz[n]: the gradient of :func:`one_hot_rows` with respect to w."""
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


_blas_lock = threading.RLock()   # the setting is process-wide: one block at a time changes it


@functools.lru_cache(maxsize=None)
def _blas_thread_functions():
    """Looked up on first use: importing SciPy costs start-up time, which commands that never
    call BLAS (batch-1 sampling) should not pay."""
    return _openblas_thread_functions()


@contextlib.contextmanager
def blas_threads(n):
    """Run the block with BLAS limited to n threads, then restore the previous setting."""
    functions = _blas_thread_functions()
    if functions is None:
        yield
        return
    get, set_ = functions
    with _blas_lock:
        previous = get()
        set_(n)
        try:
            yield
        finally:
            set_(previous)
