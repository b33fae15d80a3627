"""Each cell's element-wise update, written once (docs/model.md), and inlined by Numba into the
sequence pass (``kernels.recurrent``) and the sampling kernels that call it. Its derivative is
written once too, in the backward kernels of ``kernels.recurrent``; a change to a cell's equations
touches this module, those kernels, the report page's sampler (``views/report_assets/report.js``)
and the test reference (``tests/reference.py``).

Every function works on one sequence's row: 1-d views of H units (or of a worker's share of them),
pre-activations already summed (``x W_x + h_{t-1} W_h + b``, by :func:`add_to` or a matrix product
into the same row). Gate blocks follow the cell table (``charlm.network.celltypes``):

    rnn    h = tanh(z)
    gru    [r, u] = sigmoid(z[:2H]),  rh = r * h_{t-1}         (gru_reset)
           c~ = tanh(z_c),  h = u * c~ + (1 - u) * h_{t-1}      (gru_update; z_c reads rh W_h,c)
    lstm   [u, f, o] = sigmoid(z[:3H]),  c~ = tanh(z[3H:]),  c = u * c~ + f * c_{t-1},  h = o * tanh(c)

The activated gates are written over the pre-activations, where the backward pass reads them.
Each loop runs over whole 1-d views from index 0 and touches few distinct arrays: LLVM vectorises a
loop only after proving at run time that its arrays do not overlap, and a loop written as
``range(3H, 4H)`` over a whole row stays scalar.
"""
from numba import njit

from .activations import sigmoid, tanh

ROW = dict(inline="always", error_model="numpy")


@njit(**ROW)
def add_to(z, a, b):
    """z += a + b."""
    for j in range(z.shape[0]):
        z[j] += a[j] + b[j]


@njit(**ROW)
def rnn_update(z, h):
    """h = tanh(z)."""
    for j in range(h.shape[0]):
        h[j] = tanh(z[j])


@njit(**ROW)
def lstm_update(g, c_prev, c, h):
    """g (4H,) pre-activations [u f o c~] on entry, activated on exit; writes c and h (H,).
    c may be c_prev itself (updated in place)."""
    H = h.shape[0]
    ufo = g[:3 * H]
    for j in range(3 * H):
        ufo[j] = sigmoid(ufo[j])
    cand = g[3 * H:4 * H]
    for j in range(H):
        cand[j] = tanh(cand[j])
    u, f, o = g[:H], g[H:2 * H], g[2 * H:3 * H]
    for j in range(H):
        c[j] = u[j] * cand[j] + f[j] * c_prev[j]
    for j in range(H):
        h[j] = o[j] * tanh(c[j])


@njit(**ROW)
def gru_reset(g_ru, h_prev, rh):
    """g_ru (2H,) pre-activations [r u] on entry, activated on exit; rh = r * h_prev (H,)."""
    for j in range(g_ru.shape[0]):
        g_ru[j] = sigmoid(g_ru[j])
    r = g_ru[:h_prev.shape[0]]
    for j in range(h_prev.shape[0]):
        rh[j] = r[j] * h_prev[j]


@njit(**ROW)
def gru_update(u, cand, h_prev, h):
    """cand (H,) the candidate's pre-activation on entry, c~ on exit; h = u c~ + (1 - u) h_prev."""
    one = h.dtype.type(1.0)
    for j in range(h.shape[0]):
        cand[j] = tanh(cand[j])
    for j in range(h.shape[0]):
        h[j] = u[j] * cand[j] + (one - u[j]) * h_prev[j]
