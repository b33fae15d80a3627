"""One step back through a cell: the gradient with respect to the previous state, given the
gradient with respect to the new one (Numba), for many rows at once.

A cell's step maps the previous state (h_{t-1}, and the LSTM's c_{t-1}) to the new one. Given
dL/dh_t and, for the LSTM, dL/dc_t (each with the other held as a separate variable), these
kernels write dL/dh_{t-1} and dL/dc_{t-1}: the vector-Jacobian product of one step with respect
to its previous state, nothing else (no weight gradients, no input gradients). ``charlm.views.
gradients`` iterates them to follow a loss back through time. The formulas are those of the
training pass's backward kernels (``kernels.recurrent``), there fused into the time loop:

    rnn    dz = dh (1 - h_t^2),                                dh_{t-1} = dz W_h^T
    lstm   dc* = dc + dh o (1 - tanh^2 c_t)
           dz = [dc* u(1-u) c~,  dc* f(1-f) c_{t-1},  dh tanh(c_t) o(1-o),  dc* u (1 - c~^2)]
           dh_{t-1} = dz W_h^T,  dc_{t-1} = dc* f
    gru    dz_c = dh u (1 - c~^2),  dz_u = dh (c~ - h_{t-1}) u(1-u),  d(rh) = dz_c W_h,c^T,
           dz_r = d(rh) h_{t-1} r(1-r),  dh_{t-1} = dh (1-u) + d(rh) r + dz_[r,u] W_h,[r,u]^T

Every cell's kernel takes ``(dh, dc, gates, h_prev, c_prev, c, w_ht, dh_prev, dc_prev)``, rows
independent: dh, dc (M, H) the gradient at the new state; gates (M, G*H) the step's activated gates
(for the rnn, h_t itself), in the cell table's block order; h_prev, c_prev, c (M, H) the states
h_{t-1}, c_{t-1} and c_t (the c arguments only the LSTM reads); w_ht (G*H, H) = W_h^T, contiguous.
Writes dh_prev and dc_prev (M, H) (dc_prev only the LSTM). Each releases the GIL, so that threads
can run it on shares of the rows.
"""
import numpy as np
from numba import njit

KERNEL = dict(cache=True, error_model="numpy", nogil=True)


@njit(**KERNEL)
def rnn_step_back(dh, dc, gates, h_prev, c_prev, c, w_ht, dh_prev, dc_prev):
    M, H = dh.shape
    dz = np.empty((M, H), dh.dtype)
    for i in range(M):
        for j in range(H):
            h = gates[i, j]
            dz[i, j] = dh[i, j] * (1.0 - h * h)
    np.dot(dz, w_ht, dh_prev)


@njit(**KERNEL)
def lstm_step_back(dh, dc, gates, h_prev, c_prev, c, w_ht, dh_prev, dc_prev):
    M, H = dh.shape
    dz = np.empty((M, 4 * H), dh.dtype)
    for i in range(M):
        g, d = gates[i], dz[i]
        for j in range(H):
            u, f, o, cand = g[j], g[H + j], g[2 * H + j], g[3 * H + j]
            tc = np.tanh(c[i, j])
            dc_all = dc[i, j] + dh[i, j] * o * (1.0 - tc * tc)
            d[j] = dc_all * cand * u * (1.0 - u)
            d[H + j] = dc_all * c_prev[i, j] * f * (1.0 - f)
            d[2 * H + j] = dh[i, j] * tc * o * (1.0 - o)
            d[3 * H + j] = dc_all * u * (1.0 - cand * cand)
            dc_prev[i, j] = dc_all * f
    np.dot(dz, w_ht, dh_prev)


@njit(**KERNEL)
def gru_step_back(dh, dc, gates, h_prev, c_prev, c, w_ht, dh_prev, dc_prev):
    M, H = dh.shape
    w_ru_t = np.ascontiguousarray(w_ht[:2 * H])     # row blocks of W_h^T: [r u] and c~
    w_c_t = np.ascontiguousarray(w_ht[2 * H:])
    dz_ru = np.empty((M, 2 * H), dh.dtype)
    dz_c = np.empty((M, H), dh.dtype)
    d_rh = np.empty((M, H), dh.dtype)
    for i in range(M):
        g = gates[i]
        for j in range(H):
            u, cand = g[H + j], g[2 * H + j]
            dz_c[i, j] = dh[i, j] * u * (1.0 - cand * cand)
            dz_ru[i, H + j] = dh[i, j] * (cand - h_prev[i, j]) * u * (1.0 - u)
    np.dot(dz_c, w_c_t, d_rh)
    for i in range(M):
        g = gates[i]
        for j in range(H):
            r, u = g[j], g[H + j]
            dz_ru[i, j] = d_rh[i, j] * h_prev[i, j] * r * (1.0 - r)
            dh_prev[i, j] = dh[i, j] * (1.0 - u) + d_rh[i, j] * r
    np.dot(dz_ru, w_ru_t, d_rh)
    dh_prev += d_rh
