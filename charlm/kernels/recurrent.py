"""The sequence pass of one recurrent layer (Numba): forward through time, and backward through time
to the weights' pre-activation gradients and to the initial state. Training, the no-grad pass
(``charlm.network.engine``) and the gradients view all run these kernels.

Row-vector convention, as in SPEC.md. For one layer, the input projection ``zx_t = x_t W_x`` is
computed outside for all steps at once (one large matrix product, or a row gather for one-hot
input); the time loop here does only what cannot be batched over time: the recurrent product
``h_{t-1} W_h`` and the element-wise cell update of ``kernels.cells``, where the cells' equations
and gate blocks are written (their derivatives are the backward kernels below).

Shapes: T steps, B sequences, H hidden units.
- ``gates`` (T, B, G*H) holds zx on entry to a forward pass and the activated gates on exit: the
  backward pass needs only those, so the projection's buffer is reused in place.
- ``hs`` (T+1, B, H) holds h_0 (the initial state, set by the caller) then h_1..h_T, so that
  ``hs[:-1]`` are the inputs of the recurrent products as one contiguous (T*B, H) block;
  ``cs`` (T+1, B, H) likewise for the LSTM's cell states.
- Backward passes take ``dhs`` (T, B, H), the loss gradient reaching each h_t from above, and write
  ``dz`` (T, B, G*H), the gradient of the pre-activations (the rnn and the LSTM over ``gates``, in
  place); the caller forms every weight gradient from it as one product over the whole
  sequence. ``dh`` and ``dc`` (B, H) carry the gradient along the recurrence: on entry the
  gradient reaching the final state h_T (and the LSTM's c_T) from beyond the sequence (zeros for
  truncated BPTT), on exit the gradient with respect to the initial state h_0 (and c_0), as
  torch-rnn's grad_h0 and grad_c0. Training drops it; the gradients view follows it back one step
  at a time (T = 1, each row its own chain).
- ``blas`` chooses how a forward pass runs its per-step product (:func:`linalg.recurrent_product`):
  ``linalg.matmul_nt`` for training's shards of a few dozen sequences
  (``benchmarks/bench_products.py`` measures it against BLAS at those shapes), BLAS for the
  no-grad pass, whose threads read up to hundreds of columns each. The recurrent weights ``w``
  come as that product reads them: W_h^T (G*H, H) for matmul_nt, W_h (H, G*H) for BLAS (a view of
  the weights: the no-grad pass copies nothing per call). The backward passes take W_h and run
  matmul_nt: dz_t W_h^T is a @ w.T with w's rows contiguous.

The no-grad pass runs the same forward kernels and keeps nothing: it hands in a scratch ``gates``
block (its input projection, overwritten) and reads only hs and cs.

All kernels are pure functions over arrays, generic over float32 and float64; each releases the
GIL, so that two threads can run them on two halves of a batch.
Training memory per layer: T*B*(G*H + 2*H) floats (gates, hs, and cs or r*h), plus T*B*G*H for the
GRU's dz.
"""
import numpy as np
from numba import njit

from .activations import tanh
from .cells import add_to, gru_reset, gru_update, lstm_update, rnn_update
from .linalg import matmul_nt, recurrent_product

KERNEL = dict(cache=True, error_model="numpy", nogil=True)


# ---- forward through time ------------------------------------------------------------------------
# Every cell's forward kernel takes (gates, b, w, hs, aux, blas): aux is the LSTM's cs, the GRU's
# rh, and unused by the rnn. The element-wise updates are those of ``kernels.cells``.

@njit(**KERNEL)
def rnn_forward(gates, b, w, hs, aux, blas):
    """gates (T, B, H) holds zx on entry and h_1..h_T on exit (also written to hs[1:])."""
    T, B = gates.shape[0], gates.shape[1]
    zh = np.empty_like(hs[0])
    for t in range(T):
        recurrent_product(hs[t], w, zh, blas)
        for i in range(B):
            add_to(gates[t, i], zh[i], b)
            rnn_update(gates[t, i], hs[t + 1, i])
            gates[t, i] = hs[t + 1, i]


@njit(**KERNEL)
def lstm_forward(gates, b, w, hs, cs, blas):
    """Also writes cs[1:] (cs[0] is the initial cell state, set by the caller)."""
    T, B = gates.shape[0], gates.shape[1]
    zh = np.empty_like(gates[0])
    for t in range(T):
        recurrent_product(hs[t], w, zh, blas)
        for i in range(B):
            add_to(gates[t, i], zh[i], b)
            lstm_update(gates[t, i], cs[t, i], cs[t + 1, i], hs[t + 1, i])


@njit(**KERNEL)
def gru_forward(gates, b, w, hs, rh, blas):
    """Also writes rh (T, B, H) = r * h_{t-1}, the input of the candidate's recurrent product."""
    T, B = gates.shape[0], gates.shape[1]
    H = hs.shape[2]
    if blas:        # column blocks of W_h, copied contiguous for BLAS
        w_ru, w_c = np.ascontiguousarray(w[:, :2 * H]), np.ascontiguousarray(w[:, 2 * H:])
    else:           # row blocks of W_h^T: contiguous
        w_ru, w_c = w[:2 * H], w[2 * H:]
    b_ru, b_c = b[:2 * H], b[2 * H:]
    zh_ru = np.empty((B, 2 * H), hs.dtype)
    zh_c = np.empty((B, H), hs.dtype)
    for t in range(T):
        recurrent_product(hs[t], w_ru, zh_ru, blas)
        for i in range(B):
            g = gates[t, i]
            add_to(g[:2 * H], zh_ru[i], b_ru)
            gru_reset(g[:2 * H], hs[t, i], rh[t, i])
        recurrent_product(rh[t], w_c, zh_c, blas)
        for i in range(B):
            g = gates[t, i]
            add_to(g[2 * H:], zh_c[i], b_c)
            gru_update(g[H:2 * H], g[2 * H:], hs[t, i], hs[t + 1, i])


# ---- backward through time -----------------------------------------------------------------------
# Every cell's backward kernel takes (dhs, w_h, hs, aux, gates, dz, dh, dc); dc is read and written
# by the LSTM alone.

@njit(**KERNEL)
def rnn_backward(dhs, w_h, hs, aux, gates, dz, dh, dc):
    """dz_t = (dh_t) * (1 - h_t^2), dh_{t-1} = dhs_{t-1} + dz_t W_h^T; gates (T, B, H) holds
    h_1..h_T on entry and dz on exit (dz, hs and aux unused)."""
    T, B, H = gates.shape
    one = gates.dtype.type(1.0)
    for t in range(T - 1, -1, -1):
        for i in range(B):
            g, dhs_i, dh_i = gates[t, i], dhs[t, i], dh[i]
            for j in range(H):
                g[j] = (dhs_i[j] + dh_i[j]) * (one - g[j] * g[j])
        matmul_nt(gates[t], w_h, dh)


@njit(**KERNEL)
def lstm_backward(dhs, w_h, hs, cs, gates, dz, dh, dc):
    """From h_t = o tanh(c_t), c_t = u c~ + f c_{t-1}:
    dc_t = dh_t o (1 - tanh^2 c_t) + f_{t+1} dc_{t+1};
    dz_u = dc u(1-u) c~, dz_f = dc f(1-f) c_{t-1}, dz_o = dh tanh(c_t) o(1-o), dz_c~ = dc u (1-c~^2);
    dh_{t-1} = dhs_{t-1} + dz_t W_h^T, and dc_{t-1} = dc_t f reaches c_{t-1} directly.
    gates (T, B, 4H) holds the activated gates on entry and dz on exit (in place: the largest
    buffer of training is not needed twice; hs and dz unused)."""
    T, B, H = dhs.shape
    one = cs.dtype.type(1.0)
    tc = np.empty((B, H), cs.dtype)      # tanh(c_t)
    for t in range(T - 1, -1, -1):
        for i in range(B):
            g, c_i, dh_i, dc_i, tc_i, dhs_i = gates[t, i], cs[t + 1, i], dh[i], dc[i], tc[i], dhs[t, i]
            for j in range(H):
                dh_i[j] += dhs_i[j]
            for j in range(H):
                x = tanh(c_i[j])
                tc_i[j] = x
                dc_i[j] += dh_i[j] * g[2 * H + j] * (one - x * x)
            cp = cs[t, i]
            for j in range(H):
                u, f, o, c_new = g[j], g[H + j], g[2 * H + j], g[3 * H + j]
                d = dc_i[j]
                g[j] = d * c_new * u * (one - u)
                g[H + j] = d * cp[j] * f * (one - f)
                g[2 * H + j] = dh_i[j] * tc_i[j] * o * (one - o)
                g[3 * H + j] = d * u * (one - c_new * c_new)
                dc_i[j] = d * f
        matmul_nt(gates[t], w_h, dh)


@njit(**KERNEL)
def gru_backward(dhs, w_h, hs, rh, gates, dz, dh, dc):
    """From h_t = u c~ + (1 - u) h_{t-1}, c~ = tanh(zx_c + (r h_{t-1}) W_h,c + b_c):
    dz_c~ = dh u (1 - c~^2), dz_u = dh (c~ - h_{t-1}) u(1-u), d(r h) = dz_c~ W_h,c^T,
    dz_r = d(r h) h_{t-1} r(1-r), dh_{t-1} = dhs_{t-1} + dh (1-u) + d(r h) r + dz_ru W_h,ru^T.
    Writes dz (T, B, 3H); gates are read only; rh and dc unused."""
    T, B, H = dhs.shape
    w_h_ru = np.ascontiguousarray(w_h[:, :2 * H])      # the per-step products read whole rows
    w_h_c = np.ascontiguousarray(w_h[:, 2 * H:])
    one = hs.dtype.type(1.0)
    dz_ru = np.empty((B, 2 * H), hs.dtype)  # contiguous copies of dz's blocks for the products
    dz_c = np.empty((B, H), hs.dtype)
    d_rh = np.empty((B, H), hs.dtype)
    dh_ru = np.empty((B, H), hs.dtype)
    for t in range(T - 1, -1, -1):
        h_prev = hs[t]
        for i in range(B):
            g, d, hp, dn, dhs_i = gates[t, i], dz[t, i], h_prev[i], dh[i], dhs[t, i]
            dzru, dzc = dz_ru[i], dz_c[i]
            for j in range(H):
                u = g[H + j]
                c = g[2 * H + j]
                dh_j = dhs_i[j] + dn[j]
                x = dh_j * u * (one - c * c)
                dzc[j] = x
                d[2 * H + j] = x
                y = dh_j * (c - hp[j]) * u * (one - u)
                dzru[H + j] = y
                d[H + j] = y
                dn[j] = dh_j * (one - u)
        matmul_nt(dz_c, w_h_c, d_rh)
        for i in range(B):
            g, d, hp, dn, dzru, drh = gates[t, i], dz[t, i], h_prev[i], dh[i], dz_ru[i], d_rh[i]
            for j in range(H):
                r = g[j]
                x = drh[j] * hp[j] * r * (one - r)
                dzru[j] = x
                d[j] = x
                dn[j] += drh[j] * r
        matmul_nt(dz_ru, w_h_ru, dh_ru)
        dh += dh_ru
