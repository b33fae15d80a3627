"""Forward-only recurrent steps (Numba): the no-grad forward path's time loops, which keep no
caches for a backward pass.

Each step computes ``h_{t-1} W_h`` into one scratch row block, adds the input projection and the
bias, and applies the cell's element-wise update of ``kernels.cells``. The input projection arrives
through a row table: step t of sequence b reads row ``rows[t, b]`` of ``x_table``. For layer 0 the
table is ``W_x`` itself and ``rows`` the token ids (the one-hot product is a row gather that never
materialises); for the layers above it is the precomputed ``(T*B, G*H)`` product of the layer
below's outputs with ``W_x``, and ``rows[t, b] = t*B + b``.

Every cell's kernel takes the same arguments ``(rows, x_table, b, w_h, h, c, hs, cs)``. Shapes: T
steps, B sequences, H hidden units, G gates. ``rows`` (T, B), ``x_table`` (R, G*H), ``b`` (G*H,),
``w_h`` (H, G*H). The state arrays ``h`` and ``c`` (B, H) hold the initial state on entry and the
final state on exit (``c``: the LSTM's cell state; unused by the others). ``hs`` (T, B, H) receives
h_1..h_T, and for the LSTM ``cs`` (T, B, H) receives c_1..c_T.
Memory per layer: T*B*H floats for hs (and cs) plus B*G*H of scratch.
"""
import numpy as np
from numba import njit

from .cells import add_to, gru_reset, gru_update, lstm_update, rnn_update

KERNEL = dict(cache=True, error_model="numpy", nogil=True)


@njit(**KERNEL)
def rnn_steps(rows, x_table, b, w_h, h, c, hs, cs):
    T = rows.shape[0]
    B = h.shape[0]
    z = np.empty((B, w_h.shape[1]), h.dtype)
    for t in range(T):
        np.dot(h if t == 0 else hs[t - 1], w_h, z)
        for k in range(B):
            add_to(z[k], x_table[rows[t, k]], b)
            rnn_update(z[k], hs[t, k])
    h[:] = hs[T - 1]


@njit(**KERNEL)
def lstm_steps(rows, x_table, b, w_h, h, c, hs, cs):
    T = rows.shape[0]
    B = h.shape[0]
    z = np.empty((B, w_h.shape[1]), h.dtype)
    for t in range(T):
        np.dot(h if t == 0 else hs[t - 1], w_h, z)
        for k in range(B):
            add_to(z[k], x_table[rows[t, k]], b)
            lstm_update(z[k], c[k] if t == 0 else cs[t - 1, k], cs[t, k], hs[t, k])
    h[:] = hs[T - 1]
    c[:] = cs[T - 1]


@njit(**KERNEL)
def gru_steps(rows, x_table, b, w_h, h, c, hs, cs):
    T = rows.shape[0]
    B, H = h.shape
    w_h_ru = np.ascontiguousarray(w_h[:, :2 * H])   # BLAS reads contiguous blocks faster
    w_h_c = np.ascontiguousarray(w_h[:, 2 * H:])
    b_ru, b_c = b[:2 * H], b[2 * H:]
    z_ru = np.empty((B, 2 * H), h.dtype)
    rh = np.empty((B, H), h.dtype)
    z_c = np.empty((B, H), h.dtype)
    for t in range(T):
        h_prev = h if t == 0 else hs[t - 1]
        np.dot(h_prev, w_h_ru, z_ru)
        for k in range(B):
            add_to(z_ru[k], x_table[rows[t, k]][:2 * H], b_ru)
            gru_reset(z_ru[k], h_prev[k], rh[k])
        np.dot(rh, w_h_c, z_c)
        for k in range(B):
            add_to(z_c[k], x_table[rows[t, k]][2 * H:], b_c)
            gru_update(z_ru[k][H:], z_c[k], h_prev[k], hs[t, k])
    h[:] = hs[T - 1]
