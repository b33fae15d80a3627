"""Forward and backward passes of the recurrent cells through time (Numba).

Row-vector convention, as in SPEC.md. For one layer with input projection ``zx_t = x_t W_x + b``
(computed outside for all steps at once, as one large matrix product or a row gather), the time
loop here does only what cannot be batched over time: the recurrent product ``h_{t-1} W_h`` and the
fused element-wise cell update. Gate blocks are laid out along the last axis:

    rnn   G = 1   h_t = tanh(zx_t + h_{t-1} W_h)
    gru   G = 3   [r, u, c~]  r, u = sigmoid(zx + h_{t-1} W_h)      (blocks 0 and 1)
                              c~ = tanh(zx_c + (r * h_{t-1}) W_h,c)  (block 2)
                              h_t = u * c~ + (1 - u) * h_{t-1}
    lstm  G = 4   [u, f, o, c~]  z = zx + h_{t-1} W_h
                              u, f, o = sigmoid(z_u, z_f, z_o), c~ = tanh(z_c)
                              c_t = u * c~ + f * c_{t-1},  h_t = o * tanh(c_t)

Shapes: T steps, B sequences, H hidden units. ``zx`` is (T, B, G*H); ``hs`` (T, B, H) holds h_1..h_T;
``gates`` (T, B, G*H) the activated gates, kept for the backward pass. Backward passes take
``dhs`` (T, B, H), the loss gradient reaching each h_t from above, and write ``dz`` (T, B, G*H),
the gradient of the pre-activations, from which the caller forms every weight gradient as one
product over the whole sequence (truncated BPTT: no gradient leaves through the initial state).

All kernels are pure functions over arrays, generic over float32 and float64.
Training memory per layer: about T*B*(2*G*H + 2*H) floats (gates, dz, hs, and cs or r*h).
"""
import numpy as np
from numba import njit

from .activations import sigmoid, tanh

KERNEL = dict(cache=True, error_model="numpy", nogil=True)


# ---- one step, element-wise part (shared with the sampler) --------------------------------------
# Each loop reads and writes few distinct arrays: LLVM vectorises a loop only after proving at run
# time that its arrays do not overlap, and it gives up when that needs too many pairwise checks.

@njit(**KERNEL)
def rnn_cell(zx, zh, h):
    """h = tanh(zx + zh); all (B, H)."""
    B, H = h.shape
    for b in range(B):
        zx_b, zh_b, h_b = zx[b], zh[b], h[b]
        for j in range(H):
            h_b[j] = tanh(zx_b[j] + zh_b[j])


@njit(**KERNEL)
def lstm_cell(zx, gates, c_prev, c, h):
    """gates (B, 4H) holds h_prev W_h on entry and the activated [u f o c~] on exit;
    zx (B, 4H); writes c and h (B, H)."""
    B, H = c.shape
    for b in range(B):
        g, z = gates[b], zx[b]
        for j in range(3 * H):
            g[j] = sigmoid(g[j] + z[j])
        for j in range(3 * H, 4 * H):
            g[j] = tanh(g[j] + z[j])
        cp, c_b, h_b = c_prev[b], c[b], h[b]
        for j in range(H):
            ct = g[j] * g[3 * H + j] + g[H + j] * cp[j]
            c_b[j] = ct
            h_b[j] = g[2 * H + j] * tanh(ct)


@njit(**KERNEL)
def gru_gates(zx, zh_ru, h_prev, gates, rh):
    """Relevance and update gates: zx (B, 3H), zh_ru (B, 2H) -> gates[:, :2H]; rh = r * h_prev."""
    B, H = h_prev.shape
    for b in range(B):
        g, z, zh = gates[b], zx[b], zh_ru[b]
        for j in range(2 * H):
            g[j] = sigmoid(z[j] + zh[j])
        hp, rh_b = h_prev[b], rh[b]
        for j in range(H):
            rh_b[j] = g[j] * hp[j]


@njit(**KERNEL)
def gru_update(zx, zh_c, h_prev, gates, h):
    """Candidate and new state: zh_c = (r * h_prev) W_h,c (B, H) -> gates[:, 2H:], h (B, H)."""
    B, H = h.shape
    one = h.dtype.type(1.0)
    for b in range(B):
        g, z, zh = gates[b], zx[b], zh_c[b]
        for j in range(H):
            g[2 * H + j] = tanh(z[2 * H + j] + zh[j])
        hp, h_b = h_prev[b], h[b]
        for j in range(H):
            u = g[H + j]
            h_b[j] = u * g[2 * H + j] + (one - u) * hp[j]


# ---- forward through time ------------------------------------------------------------------------

@njit(**KERNEL)
def rnn_forward(zx, w_h, h0, hs):
    T = zx.shape[0]
    zh = np.empty_like(h0)
    for t in range(T):
        np.dot(h0 if t == 0 else hs[t - 1], w_h, zh)
        rnn_cell(zx[t], zh, hs[t])


@njit(**KERNEL)
def lstm_forward(zx, w_h, h0, c0, hs, cs, gates):
    """Also writes cs (T, B, H), the cell states c_1..c_T."""
    T = zx.shape[0]
    for t in range(T):
        np.dot(h0 if t == 0 else hs[t - 1], w_h, gates[t])
        lstm_cell(zx[t], gates[t], c0 if t == 0 else cs[t - 1], cs[t], hs[t])


@njit(**KERNEL)
def gru_forward(zx, w_h_ru, w_h_c, h0, hs, gates, rh):
    """w_h is passed split: w_h_ru = W_h[:, :2H], w_h_c = W_h[:, 2H:] (both contiguous).
    Also writes rh (T, B, H) = r * h_{t-1}, the input of the candidate's recurrent product."""
    T = zx.shape[0]
    zh_ru = np.empty((h0.shape[0], w_h_ru.shape[1]), h0.dtype)
    zh_c = np.empty_like(h0)
    for t in range(T):
        h_prev = h0 if t == 0 else hs[t - 1]
        np.dot(h_prev, w_h_ru, zh_ru)
        gru_gates(zx[t], zh_ru, h_prev, gates[t], rh[t])
        np.dot(rh[t], w_h_c, zh_c)
        gru_update(zx[t], zh_c, h_prev, gates[t], hs[t])


# ---- backward through time -----------------------------------------------------------------------

@njit(**KERNEL)
def rnn_backward(dhs, w_h, hs, dz):
    """dz_t = (dh_t) * (1 - h_t^2), dh_{t-1} += dz_t W_h^T."""
    T, B, H = hs.shape
    one = hs.dtype.type(1.0)
    dh_next = np.zeros((B, H), hs.dtype)
    for t in range(T - 1, -1, -1):
        for b in range(B):
            for j in range(H):
                h = hs[t, b, j]
                dz[t, b, j] = (dhs[t, b, j] + dh_next[b, j]) * (one - h * h)
        np.dot(dz[t], w_h.T, dh_next)


@njit(**KERNEL)
def lstm_backward(dhs, w_h, c0, cs, gates, dz):
    T, B, H = cs.shape
    one = cs.dtype.type(1.0)
    dh = np.zeros((B, H), cs.dtype)      # dL/dh_t, all paths
    dc = np.zeros((B, H), cs.dtype)      # dL/dc_t, all paths
    tc = np.empty((B, H), cs.dtype)      # tanh(c_t)
    for t in range(T - 1, -1, -1):
        c_prev = c0 if t == 0 else cs[t - 1]
        for b in range(B):
            g, c_b, dh_b, dc_b, tc_b, dhs_b = gates[t, b], cs[t, b], dh[b], dc[b], tc[b], dhs[t, b]
            for j in range(H):
                dh_b[j] += dhs_b[j]
            for j in range(H):
                x = tanh(c_b[j])
                tc_b[j] = x
                dc_b[j] += dh_b[j] * g[2 * H + j] * (one - x * x)
            d, cp = dz[t, b], c_prev[b]
            for j in range(H):
                u, f, o, c_new = g[j], g[H + j], g[2 * H + j], g[3 * H + j]
                d[j] = dc_b[j] * c_new * u * (one - u)
                d[H + j] = dc_b[j] * cp[j] * f * (one - f)
                d[2 * H + j] = dh_b[j] * tc_b[j] * o * (one - o)
                d[3 * H + j] = dc_b[j] * u * (one - c_new * c_new)
            for j in range(H):
                dc_b[j] *= g[H + j]
        np.dot(dz[t], w_h.T, dh)


@njit(**KERNEL)
def gru_backward(dhs, w_h_ru, w_h_c, h0, hs, gates, dz):
    T, B, H = hs.shape
    one = hs.dtype.type(1.0)
    dh_next = np.zeros((B, H), hs.dtype)
    dz_ru = np.empty((B, 2 * H), hs.dtype)  # contiguous copies of dz's blocks for the products
    dz_c = np.empty((B, H), hs.dtype)
    d_rh = np.empty((B, H), hs.dtype)
    dh_ru = np.empty((B, H), hs.dtype)
    for t in range(T - 1, -1, -1):
        h_prev = h0 if t == 0 else hs[t - 1]
        for b in range(B):
            for j in range(H):
                u = gates[t, b, H + j]
                g = gates[t, b, 2 * H + j]
                dh = dhs[t, b, j] + dh_next[b, j]
                dzc = dh * u * (one - g * g)
                dz_c[b, j] = dzc
                dz[t, b, 2 * H + j] = dzc
                dzu = dh * (g - h_prev[b, j]) * u * (one - u)
                dz_ru[b, H + j] = dzu
                dz[t, b, H + j] = dzu
                dh_next[b, j] = dh * (one - u)
        np.dot(dz_c, w_h_c.T, d_rh)
        for b in range(B):
            for j in range(H):
                r = gates[t, b, j]
                dzr = d_rh[b, j] * h_prev[b, j] * r * (one - r)
                dz_ru[b, j] = dzr
                dz[t, b, j] = dzr
                dh_next[b, j] += d_rh[b, j] * r
        np.dot(dz_ru, w_h_ru.T, dh_ru)
        for b in range(B):
            for j in range(H):
                dh_next[b, j] += dh_ru[b, j]
