"""Text generation: the whole sampling loop, one kernel call per chunk of steps (Numba).

Per step, for B samples side by side (row-vector convention, gate blocks as in SPEC.md):

    layer 0:   z = W_x[token] + b + h_{t-1} W_h            (a row gather: the input is one-hot)
    layer l:   z = h^{l-1}_t W_x + b + h^l_{t-1} W_h
    cell       the element-wise update of ``kernels.cells`` (the GRU's candidate block reads
               (r * h_{t-1}) W_h[:, 2H:] instead)
    output     logits = h^top W_y + b_y
    draw       p = softmax((logits - max) / temperature) over the drawable tokens (row 0 of
               ``drawable`` for the first token of a text without a prime, row 1 after: see
               ``charlm.vocab.drawable``), restricted to the top_k most probable, then to the
               smallest most-probable set holding top_p of the rest; token = the first k with
               cumsum(p)_k > u * sum(p), u ~ U[0, 1) given. Temperature 0 takes the argmax instead.

Batch 1 is bound by reading the weights once per step (about 3 MB for a 2x256 LSTM), so its
products are written here as row-blocked multiply-adds that stream each weight row once, and the
hidden units can be split between two workers (threads on two cores, each reading half of every
gate block's columns), which meet at a barrier after each layer. Each worker computes the output
layer and the draw itself: the arithmetic is identical, so both draw the same token without a
third barrier. Larger batches use ``np.dot`` (BLAS matrix products) on one worker.

Weights come packed per worker (see ``charlm.sampler.pack``): worker k owns hidden units
[k n, (k + 1) n), and its matrices hold the columns of those units gate block by gate block:

    emb  (workers, V, G'n)        layer 0's W_x rows
    w_x  (workers, L-1, H, G'n)   W_x of the layers above
    w_h  (workers, L, H, G'n)     W_h
    b    (workers, L, G'n)

G' = G, except for the GRU: its [r, u] blocks are there (G' = 2), and its candidate block, which
multiplies r * h_{t-1} instead of h_{t-1}, is kept apart in emb_c, w_xc, w_hc, b_c (..., n).
For rnn and lstm those four are empty.
"""
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from . import cells
from .. import cells as table

KERNEL = dict(cache=True, error_model="numpy", nogil=True)

RNN, GRU, LSTM = (table.cell(name).code for name in ("rnn", "gru", "lstm"))   # the table's codes
EOS_ID = 0
SYNC_STRIDE = 16                    # int64 slots between two workers' counters: one cache line each
SPINS_BEFORE_YIELD = 2000


# ---- synchronisation between the workers --------------------------------------------------------
# Numba has no atomics; these emit LLVM's atomic load and store, so that a spinning worker re-reads
# the counter each time and sees the other worker's writes (release/acquire) in order.

@intrinsic
def _load_acquire(typingctx, array, index):
    if array.dtype != types.int64:
        return None

    def codegen(context, builder, sig, args):
        arr = context.make_array(sig.args[0])(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, sig.args[0], arr, [args[1]])
        return builder.load_atomic(ptr, "acquire", 8)
    return types.int64(array, types.intp), codegen


@intrinsic
def _store_release(typingctx, array, index, value):
    if array.dtype != types.int64:
        return None

    def codegen(context, builder, sig, args):
        arr = context.make_array(sig.args[0])(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, sig.args[0], arr, [args[1]])
        builder.store_atomic(args[2], ptr, "release", 8)
        return context.get_dummy_value()
    return types.void(array, types.intp, types.int64), codegen


@intrinsic
def _yield_cpu(typingctx):
    # A worker whose partner has been preempted gives its core away instead of spinning through
    # a whole time slice.
    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(32), []),
                                            "sched_yield")
        builder.call(fn, [])
        return context.get_dummy_value()
    return types.void(), codegen


@njit(**KERNEL)
def barrier(sync, worker, workers, phase):
    """Wait until every worker has announced ``phase`` in ``sync`` (its counters only increase)."""
    if workers == 1:
        return
    _store_release(sync, worker * SYNC_STRIDE, phase)
    for other in range(workers):
        spins = 0
        while _load_acquire(sync, other * SYNC_STRIDE) < phase:
            spins += 1
            if spins > SPINS_BEFORE_YIELD:
                _yield_cpu()


# ---- products --------------------------------------------------------------------------------

@njit(**KERNEL)
def add_product(x, w, z):
    """z += x @ w for x (B, K), w (K, N), z (B, N): BLAS for several rows.

    For one row the product is a sum of K scaled rows of w, taken four at a time so that z is
    loaded and stored once per four rows of w read (the loop over N vectorises)."""
    B, K = x.shape
    N = w.shape[1]
    if B > 1:
        tmp = np.dot(x, w)
        for b in range(B):
            z_b, t_b = z[b], tmp[b]
            for j in range(N):
                z_b[j] += t_b[j]
        return
    x0, z0 = x[0], z[0]
    k4 = K - K % 4
    for i in range(0, k4, 4):
        a0, a1, a2, a3 = x0[i], x0[i + 1], x0[i + 2], x0[i + 3]
        w0, w1, w2, w3 = w[i], w[i + 1], w[i + 2], w[i + 3]
        for j in range(N):
            z0[j] += (a0 * w0[j] + a1 * w1[j]) + (a2 * w2[j] + a3 * w3[j])
    for i in range(k4, K):
        a, w_i = x0[i], w[i]
        for j in range(N):
            z0[j] += a * w_i[j]


@njit(**KERNEL)
def set_rows(z, bias):
    """z[b] = bias for every row."""
    for b in range(z.shape[0]):
        z_b = z[b]
        for j in range(z.shape[1]):
            z_b[j] = bias[j]


@njit(**KERNEL)
def gather_rows(z, table, tokens, bias):
    """z[b] = table[tokens[b]] + bias: the input product of a one-hot input."""
    for b in range(z.shape[0]):
        z_b, row = z[b], table[tokens[b]]
        for j in range(z.shape[1]):
            z_b[j] = row[j] + bias[j]


# ---- the draw ---------------------------------------------------------------------------------

@njit(**KERNEL)
def draw(logits, u, temperature, top_k, top_p, allowed, p):
    """One token from logits (V,) given a uniform u in [0, 1) (see the module docstring), among
    the tokens that allowed (V,) bool marks; p (V,) float64 is scratch."""
    V = logits.shape[0]
    best = -1
    for i in range(V):
        if allowed[i] and (best < 0 or logits[i] > logits[best]):
            best = i
    if temperature == 0.0:
        return best
    m = np.float64(logits[best])
    total = 0.0
    for i in range(V):
        p[i] = np.exp((logits[i] - m) / temperature) if allowed[i] else 0.0
        total += p[i]
    eligible = np.count_nonzero(allowed)
    k = eligible if top_k == 0 else min(top_k, eligible)
    if k == eligible and top_p >= 1.0:
        return pick(p, np.arange(V), V, u * total, best)
    order = np.argsort(-p)                  # most probable first; the undrawable (p = 0) last
    kept = 0.0
    for r in range(k):
        kept += p[order[r]]
    if top_p < 1.0:
        # The nucleus: the shortest prefix whose share of the top-k mass reaches top_p.
        acc = 0.0
        for r in range(k):
            acc += p[order[r]]
            if acc >= top_p * kept:
                k = r + 1
                kept = acc
                break
    return pick(p, order, k, u * kept, best)


@njit(**KERNEL)
def pick(p, order, k, target, best):
    """The first of order[:k] at which the running sum of p exceeds target. Tokens of probability
    0 (not drawable, or an underflow) are skipped, also when rounding leaves the sum at the target."""
    acc = 0.0
    last = best
    for r in range(k):
        i = order[r]
        if p[i] > 0.0:
            acc += p[i]
            last = i
            if acc > target:
                return i
    return last


# ---- the generation loop ----------------------------------------------------------------------

@njit(**KERNEL)
def generate(cell, emb, w_x, w_h, b, emb_c, w_xc, w_hc, b_c, w_y, b_y,
             h, c, rh, tokens, done, step0, forced, uniforms, temperature, top_k, top_p,
             drawable, stop_at_eos, out, sync, worker, workers):
    """Run len(forced) + len(uniforms) steps (fewer if all stop) on B = len(tokens) samples.

    State, carried from call to call: h and c (2, L, B, H) double-buffered (step t reads h[t % 2]
    and writes h[1 - t % 2], so a worker never overwrites what the other is still reading; c, the
    LSTM's, likewise, so that its update never works in place), rh (L, B, H) scratch for the GRU's r * h, tokens (B,) the current inputs, int64,
    done (B,) the samples that have stopped. step0 is the number of steps run by earlier calls.

    The first len(forced) steps read the prime: their next input is forced[s], nothing is drawn.
    Then each step draws the next token of every sample with uniforms[s] (B,) and writes it to
    out[s] (B,); a sample that has drawn <EOS> with stop_at_eos is done and gets -1 from then on.
    drawable (2, V) bool: the tokens that may be drawn first (when step0 + s == 0: no prime) and
    later.
    Returns the number of drawing steps run. Only worker 0 writes out, tokens and done.
    """
    L = w_h.shape[1]
    H = h.shape[3]
    B = tokens.shape[0]
    V = w_y.shape[1]
    n = H // workers
    lo = worker * n
    width = w_h.shape[3]
    z = np.empty((B, width), np.float32)
    z_c = np.empty((B, n), np.float32)
    logits = np.empty((B, V), np.float32)
    p = np.empty(V, np.float64)
    tok = tokens.copy()
    finished = done.copy()
    live = B - np.count_nonzero(finished)
    phase = 0
    F, S = forced.shape[0], uniforms.shape[0]
    for s in range(F + S):
        q = (step0 + s) % 2
        h_in, h_out = h[q], h[1 - q]
        c_in, c_out = c[q], c[1 - q]
        for l in range(L):
            h_prev = h_in[l]
            if l == 0:
                gather_rows(z, emb[worker], tok, b[worker, 0])
            else:
                set_rows(z, b[worker, l])
                add_product(h_out[l - 1], w_x[worker, l - 1], z)
            add_product(h_prev, w_h[worker, l], z)
            if cell == LSTM:
                for i in range(B):
                    cells.lstm_update(z[i], c_in[l, i, lo:lo + n], c_out[l, i, lo:lo + n], h_out[l, i, lo:lo + n])
            elif cell == RNN:
                for i in range(B):
                    cells.rnn_update(z[i], h_out[l, i, lo:lo + n])
            else:
                for i in range(B):
                    cells.gru_reset(z[i], h_prev[i, lo:lo + n], rh[l, i, lo:lo + n])
                if l == 0:
                    gather_rows(z_c, emb_c[worker], tok, b_c[worker, 0])
                else:
                    set_rows(z_c, b_c[worker, l])
                    add_product(h_out[l - 1], w_xc[worker, l - 1], z_c)
                phase += 1
                barrier(sync, worker, workers, phase)
                add_product(rh[l], w_hc[worker, l], z_c)
                for i in range(B):
                    cells.gru_update(z[i, n:2 * n], z_c[i], h_prev[i, lo:lo + n], h_out[l, i, lo:lo + n])
            phase += 1
            barrier(sync, worker, workers, phase)
        if s < F:
            tok[:] = forced[s]
            continue
        set_rows(logits, b_y)
        add_product(h_out[L - 1], w_y, logits)
        t = s - F
        allowed = drawable[0] if step0 + s == 0 else drawable[1]
        for i in range(B):
            if finished[i]:
                out[t, i] = -1
                continue
            tok[i] = draw(logits[i], uniforms[t, i], temperature, top_k, top_p, allowed, p)
            out[t, i] = tok[i]
            if stop_at_eos and tok[i] == EOS_ID:
                finished[i] = True
                live -= 1
        if live == 0:
            S = t + 1
            break
    if worker == 0:
        tokens[:] = tok
        done[:] = finished
    return S
