"""Forward-only recurrent steps for scoring (Numba): no caches kept for a backward pass.

The same cells as ``kernels.recurrent`` (equations in SPEC.md, "Model"), written for inference:
each step computes ``h_{t-1} W_h`` into one scratch row block and turns it in place into the
activated gates, so the memory is that of the outputs ``hs`` alone. The input projection arrives
through a row table: step t of sequence b reads row ``rows[t, b]`` of ``x_table``. For layer 0 the
table is ``W_x`` itself and ``rows`` the token ids (the one-hot product is a row gather that never
materialises); for the layers above it is the precomputed ``(T*B, G*H)`` product of the layer
below's outputs with ``W_x``, and ``rows[t, b] = t*B + b``. The bias ``b`` is added here.

Shapes: T steps, B sequences, H hidden units, G gates. ``rows`` (T, B), ``x_table`` (R, G*H),
``b`` (G*H,), ``w_h`` (H, G*H), ``hs`` (T, B, H) receives h_1..h_T. The state arrays ``h`` (and
``c``), (B, H), hold the initial state on entry and the final state on exit.
Memory per layer: T*B*H floats for hs plus B*G*H of scratch.
"""
import numpy as np
from numba import njit

from .activations import sigmoid, tanh

KERNEL = dict(cache=True, error_model="numpy", nogil=True)


@njit(**KERNEL)
def rnn_steps(rows, x_table, b, w_h, h, hs):
    """h_t = tanh(x_table[rows[t]] + b + h_{t-1} W_h)."""
    T = rows.shape[0]
    B, H = h.shape
    z = np.empty((B, H), h.dtype)
    for t in range(T):
        np.dot(h if t == 0 else hs[t - 1], w_h, z)
        for k in range(B):
            zk, xk, hk = z[k], x_table[rows[t, k]], hs[t, k]
            for j in range(H):
                hk[j] = tanh(zk[j] + xk[j] + b[j])
    h[:] = hs[T - 1]


# The loops below run over whole 1-d views from index 0: a loop over z[k, 3H:4H] written as
# range(3H, 4H) on z[k] was left scalar by LLVM and took 4.5 times as long.

@njit(**KERNEL)
def lstm_steps(rows, x_table, b, w_h, h, c, hs):
    """Gates [u f o c~] = act(x_table[rows[t]] + b + h_{t-1} W_h); c_t = u c~ + f c_{t-1},
    h_t = o tanh(c_t). c is updated in place step by step."""
    T = rows.shape[0]
    B, H = h.shape
    z = np.empty((B, 4 * H), h.dtype)
    b_ufo, b_c = b[:3 * H], b[3 * H:]
    for t in range(T):
        np.dot(h if t == 0 else hs[t - 1], w_h, z)
        for k in range(B):
            zk, xk = z[k], x_table[rows[t, k]]
            ufo, x_ufo = zk[:3 * H], xk[:3 * H]
            for j in range(3 * H):
                ufo[j] = sigmoid(ufo[j] + x_ufo[j] + b_ufo[j])
            cand, x_c = zk[3 * H:], xk[3 * H:]
            for j in range(H):
                cand[j] = tanh(cand[j] + x_c[j] + b_c[j])
            u, f, o = zk[:H], zk[H:2 * H], zk[2 * H:3 * H]
            ck, hk = c[k], hs[t, k]
            for j in range(H):
                ck[j] = u[j] * cand[j] + f[j] * ck[j]
            for j in range(H):
                hk[j] = o[j] * tanh(ck[j])
    h[:] = hs[T - 1]


@njit(**KERNEL)
def gru_steps(rows, x_table, b, w_h_ru, w_h_c, h, hs):
    """r, u = sigmoid(x[rows[t]] + b + h_{t-1} W_h,ru); c~ = tanh(x_c + b_c + (r h_{t-1}) W_h,c);
    h_t = u c~ + (1 - u) h_{t-1}. W_h comes split in its contiguous blocks W_h,ru (H, 2H) and
    W_h,c (H, H)."""
    T = rows.shape[0]
    B, H = h.shape
    one = h.dtype.type(1.0)
    z_ru = np.empty((B, 2 * H), h.dtype)
    rh = np.empty((B, H), h.dtype)
    z_c = np.empty((B, H), h.dtype)
    b_ru, b_c = b[:2 * H], b[2 * H:]
    for t in range(T):
        h_prev = h if t == 0 else hs[t - 1]
        np.dot(h_prev, w_h_ru, z_ru)
        for k in range(B):
            ru, x_ru, hp, rk = z_ru[k], x_table[rows[t, k]][:2 * H], h_prev[k], rh[k]
            for j in range(2 * H):
                ru[j] = sigmoid(ru[j] + x_ru[j] + b_ru[j])
            for j in range(H):
                rk[j] = ru[j] * hp[j]
        np.dot(rh, w_h_c, z_c)
        for k in range(B):
            ck, x_c = z_c[k], x_table[rows[t, k]][2 * H:]
            for j in range(H):
                ck[j] = tanh(ck[j] + x_c[j] + b_c[j])
            u, hp, hk = z_ru[k][H:], h_prev[k], hs[t, k]
            for j in range(H):
                hk[j] = u[j] * ck[j] + (one - u[j]) * hp[j]
    h[:] = hs[T - 1]
