"""The sequence pass of one recurrent layer (Numba): forward through time, and backward through time
to the weights' pre-activation gradients and to the initial state. Training, the no-grad pass
(``charlm.network.engine``) and the gradients view all run these kernels.

Row-vector convention, as in docs/model.md. For one layer, the input projection
``zx_t = x_t W_x`` is computed outside for all steps at once (one large matrix product, or a row
gather for one-hot input); the time loop here does only what cannot be batched over time: the
recurrent product ``h_{t-1} W_h`` and the element-wise cell update of ``kernels.cells``, where the
cells' equations and gate blocks are written (their derivatives are the backward kernels below).

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
GIL, so that two threads can run them on two halves of a batch. The split kernels at the end run
one pass on several threads at once, which meet at barriers (``kernels.barrier``).
Training memory per layer: T*B*(G*H + 2*H) floats (gates, hs, and cs or r*h), plus T*B*G*H for the
GRU's dz.
"""
import numpy as np
from numba import njit

from .activations import tanh
from .cells import add_to, gru_reset, gru_update, lstm_update, rnn_update
from .barrier import barrier
from .linalg import matmul_nt, recurrent_product
from .stack_step import add_row_product

KERNEL = dict(cache=True, error_model="numpy", nogil=True)
ROW = dict(inline="always", error_model="numpy")


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
# by the LSTM alone. The derivatives are written once, per row, for a range of units (the rows'
# views start at the range's first unit, and a gate block's unit j sits at g[k H + j]): the whole
# layer's kernels below pass every unit, the split kernels further down a worker's share.

@njit(**ROW)
def rnn_gradient(g, dhs, dh):
    """dz = (dhs + dh) (1 - h^2) for g's units: g holds h on entry and dz on exit."""
    one = g.dtype.type(1.0)
    for j in range(dh.shape[0]):
        g[j] = (dhs[j] + dh[j]) * (one - g[j] * g[j])


@njit(**ROW)
def lstm_gradient(g, H, c, c_prev, dhs, dh, dc, tc):
    """From h_t = o tanh(c_t), c_t = u c~ + f c_{t-1}:
    dc_t = dh_t o (1 - tanh^2 c_t) + f_{t+1} dc_{t+1};
    dz_u = dc u(1-u) c~, dz_f = dc f(1-f) c_{t-1}, dz_o = dh tanh(c_t) o(1-o),
    dz_c~ = dc u (1-c~^2), and dc_{t-1} = dc_t f reaches c_{t-1} directly. g holds the activated
    gates on entry and dz on exit; dh becomes dh + dhs, dc becomes dc_{t-1}; tc is scratch for
    tanh(c_t)."""
    one = c.dtype.type(1.0)
    n = dh.shape[0]
    for j in range(n):
        dh[j] += dhs[j]
    for j in range(n):
        x = tanh(c[j])
        tc[j] = x
        dc[j] += dh[j] * g[2 * H + j] * (one - x * x)
    for j in range(n):
        u, f, o, c_new = g[j], g[H + j], g[2 * H + j], g[3 * H + j]
        d = dc[j]
        g[j] = d * c_new * u * (one - u)
        g[H + j] = d * c_prev[j] * f * (one - f)
        g[2 * H + j] = dh[j] * tc[j] * o * (one - o)
        g[3 * H + j] = d * u * (one - c_new * c_new)
        dc[j] = d * f


@njit(**ROW)
def gru_candidate_gradient(g, d, H, h_prev, dhs, dh):
    """From h_t = u c~ + (1 - u) h_{t-1}: dz_c~ = dh u (1 - c~^2) and
    dz_u = dh (c~ - h_{t-1}) u(1-u) into d, the dz row; dh becomes dh (1 - u), the part of
    dh_{t-1} that passes through the update gate (dh = dhs + the carried dh on entry)."""
    one = h_prev.dtype.type(1.0)
    for j in range(dh.shape[0]):
        u = g[H + j]
        c = g[2 * H + j]
        dh_j = dhs[j] + dh[j]
        d[2 * H + j] = dh_j * u * (one - c * c)
        d[H + j] = dh_j * (c - h_prev[j]) * u * (one - u)
        dh[j] = dh_j * (one - u)


@njit(**ROW)
def gru_reset_gradient(g, d, h_prev, d_rh, dh):
    """From rh = r h_{t-1}, given d(rh) = dz_c~ W_h,c^T: dz_r = d(rh) h_{t-1} r(1-r) into d, and
    d(rh) r added to dh."""
    one = h_prev.dtype.type(1.0)
    for j in range(dh.shape[0]):
        r = g[j]
        d[j] = d_rh[j] * h_prev[j] * r * (one - r)
        dh[j] += d_rh[j] * r


@njit(**KERNEL)
def rnn_backward(dhs, w_h, hs, aux, gates, dz, dh, dc):
    """dz_t = (dh_t) * (1 - h_t^2), dh_{t-1} = dhs_{t-1} + dz_t W_h^T; gates (T, B, H) holds
    h_1..h_T on entry and dz on exit (dz, hs and aux unused)."""
    T, B = gates.shape[0], gates.shape[1]
    for t in range(T - 1, -1, -1):
        for i in range(B):
            rnn_gradient(gates[t, i], dhs[t, i], dh[i])
        matmul_nt(gates[t], w_h, dh)


@njit(**KERNEL)
def lstm_backward(dhs, w_h, hs, cs, gates, dz, dh, dc):
    """:func:`lstm_gradient` at every step, and dh_{t-1} = dhs_{t-1} + dz_t W_h^T.
    gates (T, B, 4H) holds the activated gates on entry and dz on exit (in place: the largest
    buffer of training is not needed twice; hs and dz unused)."""
    T, B, H = dhs.shape
    tc = np.empty((B, H), cs.dtype)      # tanh(c_t)
    for t in range(T - 1, -1, -1):
        for i in range(B):
            lstm_gradient(gates[t, i], H, cs[t + 1, i], cs[t, i], dhs[t, i], dh[i], dc[i], tc[i])
        matmul_nt(gates[t], w_h, dh)


@njit(**KERNEL)
def gru_backward(dhs, w_h, hs, rh, gates, dz, dh, dc):
    """From h_t = u c~ + (1 - u) h_{t-1}, c~ = tanh(zx_c + (r h_{t-1}) W_h,c + b_c):
    dz_c~ and dz_u (:func:`gru_candidate_gradient`), d(r h) = dz_c~ W_h,c^T, dz_r
    (:func:`gru_reset_gradient`), dh_{t-1} = dhs_{t-1} + dh (1-u) + d(r h) r + dz_ru W_h,ru^T.
    Writes dz (T, B, 3H); gates are read only; rh and dc unused."""
    T, B, H = dhs.shape
    w_h_ru = np.ascontiguousarray(w_h[:, :2 * H])      # the per-step products read whole rows
    w_h_c = np.ascontiguousarray(w_h[:, 2 * H:])
    dz_ru = np.empty((B, 2 * H), hs.dtype)  # contiguous copies of dz's blocks for the products
    dz_c = np.empty((B, H), hs.dtype)
    d_rh = np.empty((B, H), hs.dtype)
    dh_ru = np.empty((B, H), hs.dtype)
    for t in range(T - 1, -1, -1):
        for i in range(B):
            gru_candidate_gradient(gates[t, i], dz[t, i], H, hs[t, i], dhs[t, i], dh[i])
            dz_c[i] = dz[t, i, 2 * H:]
        matmul_nt(dz_c, w_h_c, d_rh)
        for i in range(B):
            gru_reset_gradient(gates[t, i], dz[t, i], hs[t, i], d_rh[i], dh[i])
            dz_ru[i] = dz[t, i, :2 * H]
        matmul_nt(dz_ru, w_h_ru, dh_ru)
        dh += dh_ru


# ---- one layer, its hidden units split among workers ---------------------------------------------
# For a few sequences (dynamic evaluation reads one) a step's products are matrix-vector products
# that read all of W_h, and that read bounds the step. Two workers on two cores each read half:
# worker k owns hidden units [lo, hi) and computes, at every step, the pre-activations of its units
# in every gate block, their cell update, and, going backward, its units' rows of dz_t W_h^T. The
# workers meet at a barrier (``kernels.barrier``) once a step: after it, h_t (forward) or dz_t
# (backward) is whole for both (twice for the GRU, whose candidate reads r * h_{t-1} and whose
# dh_{t-1} reads d(r h)). A split kernel takes the arguments of the whole-layer kernel and then
# (lo, hi, sync, worker, workers, phase), where phase counts the barriers passed before the call;
# it returns the new count.
#
# Every unit's sums run in the same order whatever the split (each column's product adds W_h's
# rows in order, from the first; each unit of dz_t W_h^T is one ``matmul_nt`` dot product,
# whose path depends on the sequence's row alone), so one worker and two give the same bits. Each
# call reads W_h as it is then (dynamic evaluation changes the weights between calls): the forward
# packs its worker's columns once per call; the backward reads its worker's rows in place (the
# GRU's copied, a block at a time). The products read each row of W once for all b sequences.

@njit(**KERNEL)
def pack_units(w, first, G, lo, hi):
    """The columns first + k H + [lo, hi) of W (H, *) for each block k < G, side by side in a
    C-contiguous (H, G n) copy: a worker's units in G consecutive gate blocks from column
    ``first``. Copied once per call, so that each step's product streams whole contiguous rows
    rather than G short pieces of each row of W."""
    H = w.shape[0]
    n = hi - lo
    out = np.empty((H, G * n), w.dtype)
    for k in range(H):
        for blk in range(G):
            col = first + blk * H + lo
            out[k, blk * n:(blk + 1) * n] = w[k, col:col + n]
    return out


@njit(**KERNEL)
def add_unit_products(h, packed, z):
    """z (B, G n) += h (B, H) @ packed (:func:`pack_units`). One sequence is generation's
    one-row product; several add packed's rows one at a time, each read once for all B rows
    (whose sums stay in cache: B is a segment's few lines)."""
    B, H = h.shape
    if B == 1:
        add_row_product(h[0], packed, z[0])
        return
    for k in range(H):
        w_k = packed[k]
        for i in range(B):
            a, z_i = h[i, k], z[i]
            for j in range(z_i.shape[0]):
                z_i[j] += a * w_k[j]


@njit(**KERNEL)
def gather_units(rows, b, first, H, lo, hi, z):
    """z (B, G n) = rows (B, *) + b at this worker's columns (those of :func:`pack_units`)."""
    n = hi - lo
    for i in range(z.shape[0]):
        for blk in range(z.shape[1] // n):
            col = first + blk * H + lo
            zb, r, bb = z[i, blk * n:(blk + 1) * n], rows[i, col:col + n], b[col:col + n]
            for j in range(n):
                zb[j] = r[j] + bb[j]


@njit(**KERNEL)
def scatter_units(z, first, H, lo, hi, rows):
    """rows (B, *) at this worker's columns = z (B, G n): the inverse of :func:`gather_units`."""
    n = hi - lo
    for i in range(z.shape[0]):
        for blk in range(z.shape[1] // n):
            col = first + blk * H + lo
            rows[i, col:col + n] = z[i, blk * n:(blk + 1) * n]


@njit(**KERNEL)
def one_product_forward_split(gates, b, w, hs, cs, lo, hi, sync, worker, workers, phase, G):
    """The split forward of the cells whose step is one product, the rnn's (G = 1) and the
    LSTM's (G = 4): the product, the cell update, and the activated gates (the rnn's: h) back
    into gates."""
    T, B, H = gates.shape[0], gates.shape[1], hs.shape[2]
    z = np.empty((B, G * (hi - lo)), gates.dtype)
    packed = pack_units(w, 0, G, lo, hi)
    for t in range(T):
        gather_units(gates[t], b, 0, H, lo, hi, z)
        add_unit_products(hs[t], packed, z)
        for i in range(B):
            if G == 4:
                lstm_update(z[i], cs[t, i, lo:hi], cs[t + 1, i, lo:hi], hs[t + 1, i, lo:hi])
            else:
                rnn_update(z[i], hs[t + 1, i, lo:hi])
                z[i] = hs[t + 1, i, lo:hi]
        scatter_units(z, 0, H, lo, hi, gates[t])
        phase += 1
        barrier(sync, worker, workers, phase)            # h_t whole
    return phase


@njit(**KERNEL)
def rnn_forward_split(gates, b, w, hs, aux, lo, hi, sync, worker, workers, phase):
    """:func:`rnn_forward` for units [lo, hi), W_h as stored."""
    return one_product_forward_split(gates, b, w, hs, aux, lo, hi, sync, worker, workers, phase, 1)


@njit(**KERNEL)
def lstm_forward_split(gates, b, w, hs, cs, lo, hi, sync, worker, workers, phase):
    """:func:`lstm_forward` for units [lo, hi), W_h as stored."""
    return one_product_forward_split(gates, b, w, hs, cs, lo, hi, sync, worker, workers, phase, 4)


@njit(**KERNEL)
def gru_forward_split(gates, b, w, hs, rh, lo, hi, sync, worker, workers, phase):
    """:func:`gru_forward` for units [lo, hi), W_h as stored."""
    T, B, H = gates.shape[0], gates.shape[1], hs.shape[2]
    n = hi - lo
    z_ru = np.empty((B, 2 * n), gates.dtype)
    z_c = np.empty((B, n), gates.dtype)
    packed, packed_c = pack_units(w, 0, 2, lo, hi), pack_units(w, 2 * H, 1, lo, hi)
    for t in range(T):
        gather_units(gates[t], b, 0, H, lo, hi, z_ru)
        add_unit_products(hs[t], packed, z_ru)
        for i in range(B):
            gru_reset(z_ru[i], hs[t, i, lo:hi], rh[t, i, lo:hi])
        phase += 1
        barrier(sync, worker, workers, phase)            # r * h_{t-1} whole
        gather_units(gates[t], b, 2 * H, H, lo, hi, z_c)
        add_unit_products(rh[t], packed_c, z_c)
        for i in range(B):
            gru_update(z_ru[i, n:], z_c[i], hs[t, i, lo:hi], hs[t + 1, i, lo:hi])
        scatter_units(z_ru, 0, H, lo, hi, gates[t])
        scatter_units(z_c, 2 * H, H, lo, hi, gates[t])
        phase += 1
        barrier(sync, worker, workers, phase)            # h_t whole
    return phase


@njit(**KERNEL)
def one_product_backward_split(dhs, w_h, hs, cs, gates, dz, dh, dc, lo, hi, sync, worker,
                               workers, phase, G):
    """The split backward of the rnn (G = 1) and the LSTM (G = 4): this worker's dz_t, then, once
    every worker has written its own, this worker's units of dh_{t-1} = dz_t W_h^T from its rows
    of W_h."""
    T, B, H = dhs.shape
    tc = np.empty((B, hi - lo), dh.dtype)
    carried = np.empty((B, hi - lo), dh.dtype)
    w_rows = w_h[lo:hi]
    for t in range(T - 1, -1, -1):
        for i in range(B):
            if G == 4:
                lstm_gradient(gates[t, i, lo:], H, cs[t + 1, i, lo:hi], cs[t, i, lo:hi],
                              dhs[t, i, lo:hi], dh[i, lo:hi], dc[i, lo:hi], tc[i])
            else:
                rnn_gradient(gates[t, i, lo:hi], dhs[t, i, lo:hi], dh[i, lo:hi])
        phase += 1
        barrier(sync, worker, workers, phase)            # dz_t whole
        matmul_nt(gates[t], w_rows, carried)
        dh[:, lo:hi] = carried
    return phase


@njit(**KERNEL)
def rnn_backward_split(dhs, w_h, hs, aux, gates, dz, dh, dc, lo, hi, sync, worker, workers,
                       phase):
    """:func:`rnn_backward` for units [lo, hi)."""
    return one_product_backward_split(dhs, w_h, hs, aux, gates, dz, dh, dc, lo, hi, sync, worker,
                                      workers, phase, 1)


@njit(**KERNEL)
def lstm_backward_split(dhs, w_h, hs, cs, gates, dz, dh, dc, lo, hi, sync, worker, workers,
                        phase):
    """:func:`lstm_backward` for units [lo, hi)."""
    return one_product_backward_split(dhs, w_h, hs, cs, gates, dz, dh, dc, lo, hi, sync, worker,
                                      workers, phase, 4)


@njit(**KERNEL)
def gru_backward_split(dhs, w_h, hs, rh, gates, dz, dh, dc, lo, hi, sync, worker, workers,
                       phase):
    """:func:`gru_backward` for units [lo, hi): dz_c~ and dz_u, then d(r h) for this worker's
    units, dz_r, then its rows of dz_ru W_h,ru^T. Each worker copies its rows of each block
    (contiguous for the products) and each whole block of dz_t, once the workers have met."""
    T, B, H = dhs.shape
    n = hi - lo
    w_c = np.ascontiguousarray(w_h[lo:hi, 2 * H:])
    w_ru = np.ascontiguousarray(w_h[lo:hi, :2 * H])
    dz_c, dz_ru = np.empty((B, H), hs.dtype), np.empty((B, 2 * H), hs.dtype)
    d_rh, dh_ru = np.empty((B, n), hs.dtype), np.empty((B, n), hs.dtype)
    for t in range(T - 1, -1, -1):
        for i in range(B):
            gru_candidate_gradient(gates[t, i, lo:], dz[t, i, lo:], H, hs[t, i, lo:hi],
                                   dhs[t, i, lo:hi], dh[i, lo:hi])
        phase += 1
        barrier(sync, worker, workers, phase)            # dz_c~ whole
        dz_c[:] = dz[t, :, 2 * H:]
        matmul_nt(dz_c, w_c, d_rh)
        for i in range(B):
            gru_reset_gradient(gates[t, i, lo:], dz[t, i, lo:], hs[t, i, lo:hi], d_rh[i],
                               dh[i, lo:hi])
        phase += 1
        barrier(sync, worker, workers, phase)            # dz_r whole
        dz_ru[:] = dz[t, :, :2 * H]
        matmul_nt(dz_ru, w_ru, dh_ru)
        dh[:, lo:hi] += dh_ru
    return phase
