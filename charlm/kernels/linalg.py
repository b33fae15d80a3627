"""Matrix products for the Python side of the model (Numba).

numpy and SciPy each bundle their own OpenBLAS, and Numba's ``np.dot`` calls SciPy's. Mixing the two
in one training step cost more than a third of the speed here: after each call, one library's
worker threads keep spinning on both cores while the other library runs. Every product of the
model therefore goes through this module, so that one BLAS thread pool does all the work.
"""
import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def matmul(a, b, out):
    """out = a @ b for 2-d arrays, each C- or Fortran-contiguous (a transposed view is fine)."""
    np.dot(a, b, out)
