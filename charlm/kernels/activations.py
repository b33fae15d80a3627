"""Gate non-linearities that Numba can vectorise.

Inside a Numba loop, ``np.tanh`` and ``np.exp`` become scalar calls into libm (the llvmlite wheels
on PyPI carry no SVML), which keeps LLVM from vectorising the fused cell updates: one element per
call where packed arithmetic does 8 (AVX, float32) at once. For float32 we therefore evaluate tanh
as a rational function in plain arithmetic, which compiles to packed AVX instructions:

    tanh(x) ~= x * P(x^2) / Q(x^2),   |x| clamped to 9 (tanh(9) rounds to 1 in float32)

with P and Q of degree 4 (the result clamped to [-1, 1]), fitted by iteratively reweighted least
squares (Lawson's algorithm) for the smallest maximum error: 3.5e-7 absolute against float64 tanh,
about 6 float32 ulp (tests/test_kernels.py holds it to that).
The sigmoid follows from sigmoid(x) = (1 + tanh(x / 2)) / 2.

float64 keeps the exact library functions: it is used by the gradient checks, which need the
derivative formulas of the backward pass to match the forward pass to 1e-5 or better.

The kernels that call these must be compiled with ``error_model="numpy"``: the default Python
error model guards every division with a zero check, and that branch stops vectorisation.
"""
import numpy as np
from numba import types
from numba.extending import overload

TANH_CLAMP = 9.0
TANH_P = (0.999999979464162, 0.1338109091710132, 0.003495665543773967,
          2.061034990415286e-05, 1.3356398570474326e-08)
TANH_Q = (1.0, 0.46714406526951635, 0.025877277024352097,
          0.0003285761182291587, 7.777273882750291e-07)

_P = tuple(np.float32(c) for c in TANH_P)
_Q = tuple(np.float32(c) for c in TANH_Q)
_CLAMP = np.float32(TANH_CLAMP)
_HALF = np.float32(0.5)
_ONE = np.float32(1.0)


def tanh(x):
    """tanh for use inside kernels; exact in float64, rational approximation in float32."""
    return np.tanh(x)


def sigmoid(x):
    """Logistic sigmoid for use inside kernels; same precision rules as :func:`tanh`."""
    return 1.0 / (1.0 + np.exp(-x))


def _tanh_f32(x):
    x = min(max(x, -_CLAMP), _CLAMP)
    s = x * x
    p = (((_P[4] * s + _P[3]) * s + _P[2]) * s + _P[1]) * s + _P[0]
    q = (((_Q[4] * s + _Q[3]) * s + _Q[2]) * s + _Q[1]) * s + _Q[0]
    # near the clamp the fit overshoots 1 by an ulp or two; |tanh| > 1 would make the backward
    # pass's 1 - tanh^2 negative
    return min(max(x * p / q, -_ONE), _ONE)


@overload(tanh, inline="always", jit_options={"error_model": "numpy"})
def _tanh_overload(x):
    if x == types.float32:
        return _tanh_f32
    if isinstance(x, types.Float):
        return lambda x: np.tanh(x)
    return None


@overload(sigmoid, inline="always", jit_options={"error_model": "numpy"})
def _sigmoid_overload(x):
    if x == types.float32:
        return lambda x: _HALF + _HALF * tanh(_HALF * x)
    if isinstance(x, types.Float):
        return lambda x: 1.0 / (1.0 + np.exp(-x))
    return None
