"""Text generation: the whole sampling loop, one kernel call per chunk of steps (Numba).

Per step, for B samples side by side (row-vector convention, gate blocks as in SPEC.md):

    layer 0:   z = W_x[token] + b + h_{t-1} W_h            (a row gather: the input is one-hot)
    layer l:   z = h^{l-1}_t W_x + b + h^l_{t-1} W_h
    cell       the element-wise update of ``kernels.cells`` (the GRU's candidate block reads
               (r * h_{t-1}) W_h[:, 2H:] instead)
    output     logits = h^top W_y + b_y
    draw       p = softmax((logits - max) / temperature) over the drawable tokens (row 0 of
               ``drawable`` for the first token of a text without a prime, row 1 after: see
               ``charlm.text.vocab.drawable``), restricted to the top_k most probable, then to the
               smallest most-probable set holding top_p of the rest; token = the first k with
               cumsum(p)_k > u * sum(p), u ~ U[0, 1) given. Temperature 0 takes the argmax instead.

Batch 1 is bound by reading the weights once per step (about 3 MB for a 2x256 LSTM), so its
products are written here as row-blocked multiply-adds that stream each weight row once, and the
hidden units can be split between two workers (threads on two cores, each reading half of every
gate block's columns), which meet at a barrier after each layer. Each worker computes the output
layer and the draw itself: the arithmetic is identical, so both draw the same token without a
third barrier. Several samples (one worker; ``charlm.generation.sampler.Batch`` runs one group per core)
take one product per layer instead, [x | h_{t-1}] [W_x; W_h], through ``linalg.matmul_nt``, as
the beam search does, which runs faster on these few rows than ``np.dot`` (BLAS repacks the
weights on every call; ``benchmarks/bench_products.py`` measures both).

Weights come packed per worker (see ``charlm.generation.sampler.pack``): worker k owns hidden units
[k n, (k + 1) n), and its matrices hold the columns of those units gate block by gate block:

    emb  (workers, V, G'n)        layer 0's W_x rows
    b    (workers, L, G'n)
    and, for one sample (rows of the weights):
    w_x  (workers, L-1, H, G'n)   W_x of the layers above
    w_h  (workers, L, H, G'n)     W_h
    w_y  (H, V)
    or, for several (``charlm.generation.sampler.transposed``: rows along the input):
    wt0   (workers, G'n, H)       layer 0's W_h^T
    wt_up (workers, L-1, G'n, 2H) [W_x; W_h]^T of the layers above, which read [x | h_{t-1}]
    wt_y  (V, H)

G' = G, except for the GRU: its [r, u] blocks are there (G' = 2), and its candidate block, which
multiplies r * h_{t-1} instead of h_{t-1}, is kept apart in emb_c, b_c and w_xc, w_hc or wtc0,
wtc_up (..., n). For rnn and lstm those are empty, as are the tables of the layout not in use.
"""
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from . import cells
from .linalg import matmul_nt
from ..network import celltypes as table

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
def add_row_product(x, w, z):
    """z += x @ w for one row x (K,), w (K, N), z (N,): a sum of K scaled rows of w, taken four at
    a time so that z is loaded and stored once per four rows of w read (the loop over N
    vectorises)."""
    K = x.shape[0]
    N = w.shape[1]
    k4 = K - K % 4
    for i in range(0, k4, 4):
        a0, a1, a2, a3 = x[i], x[i + 1], x[i + 2], x[i + 3]
        w0, w1, w2, w3 = w[i], w[i + 1], w[i + 2], w[i + 3]
        for j in range(N):
            z[j] += (a0 * w0[j] + a1 * w1[j]) + (a2 * w2[j] + a3 * w3[j])
    for i in range(k4, K):
        a, w_i = x[i], w[i]
        for j in range(N):
            z[j] += a * w_i[j]


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


@njit(**KERNEL)
def add_bias(z, bias):
    """z[i] += bias for every row."""
    for i in range(z.shape[0]):
        z_i = z[i]
        for j in range(z.shape[1]):
            z_i[j] += bias[j]


@njit(**KERNEL)
def layer_inputs(xin, below, h_prev):
    """xin (R, 2H) = [below | h_prev], row by row: the input of a layer above the first."""
    H = below.shape[1]
    for i in range(xin.shape[0]):
        xin[i, :H] = below[i]
        xin[i, H:] = h_prev[i]


@njit(**KERNEL)
def pre_activations(l, worker, hp, below, tok, emb, wt0, wt_up, b, xin, z):
    """z (R, width) = this worker's columns of x W_x + h_{t-1} W_h + b for layer l: a row gather
    of emb and hp wt0^T for layer 0, [below | hp] wt_up^T above it."""
    R = z.shape[0]
    if l == 0:
        matmul_nt(hp, wt0[worker], z)
        for i in range(R):
            cells.add_to(z[i], emb[worker, tok[i]], b[worker, 0])
    else:
        layer_inputs(xin, below, hp)
        matmul_nt(xin, wt_up[worker, l - 1], z)
        add_bias(z, b[worker, l])


@njit(**KERNEL)
def layer_pre_activations(l, worker, h_prev, below, tok, emb, w_x, w_h, wt0, wt_up, b, xin, z):
    """z = this worker's columns of x W_x + h_{t-1} W_h + b for layer l, from whichever weight
    layout is given (the other's tables are empty): rows of w_x, w_h for one sample, or the
    transposed tables wt0, wt_up for several (see the module docstring)."""
    if wt0.size > 0:
        pre_activations(l, worker, h_prev, below, tok, emb, wt0, wt_up, b, xin, z)
        return
    if l == 0:
        gather_rows(z, emb[worker], tok, b[worker, 0])
    else:
        set_rows(z, b[worker, l])
        add_row_product(below[0], w_x[worker, l - 1], z[0])
    add_row_product(h_prev[0], w_h[worker, l], z[0])


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
def generate(cell, emb, b, emb_c, b_c, b_y, w_x, w_h, w_xc, w_hc, w_y, wt0, wt_up, wtc0, wtc_up,
             wt_y, h, c, rh, tokens, done, step0, forced, uniforms, temperature, top_k, top_p,
             drawable, stop_at_eos, out, sync, worker, workers):
    """Run len(forced) + len(uniforms) steps (fewer if all stop) on B = len(tokens) samples, with
    the weights of one layout (see the module docstring; the other layout's tables are empty).

    State, carried from call to call: h and c (2, L, B, H) double-buffered (step t reads h[t % 2]
    and writes h[1 - t % 2], so a worker never overwrites what the other is still reading; c, the
    LSTM's, likewise, so that its update never works in place), rh (L, B, H) scratch for the GRU's
    r * h, tokens (B,) the current inputs, int64, done (B,) the samples that have stopped. step0
    is the number of steps run by earlier calls.

    The first len(forced) steps read the prime: their next input is forced[s], nothing is drawn.
    Then each step draws the next token of every sample with uniforms[s] (B,) and writes it to
    out[s] (B,); a sample that has drawn <EOS> with stop_at_eos is done and gets -1 from then on.
    drawable (2, V) bool: the tokens that may be drawn first (when step0 + s == 0: no prime) and
    later.
    Returns the number of drawing steps run. Only worker 0 writes out, tokens and done.
    """
    L = b.shape[1]
    H = h.shape[3]
    B = tokens.shape[0]
    V = b_y.shape[0]
    n = H // workers
    lo = worker * n
    z = np.empty((B, b.shape[2]), np.float32)
    z_c = np.empty((B, n), np.float32)
    xin = np.empty((B, 2 * H), np.float32)         # [h of the layer below | h_{t-1}]
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
            layer_pre_activations(l, worker, h_prev, h_out[l - 1], tok, emb, w_x, w_h, wt0, wt_up,
                                  b, xin, z)
            if cell == LSTM:
                for i in range(B):
                    cells.lstm_update(z[i], c_in[l, i, lo:lo + n], c_out[l, i, lo:lo + n], h_out[l, i, lo:lo + n])
            elif cell == RNN:
                for i in range(B):
                    cells.rnn_update(z[i], h_out[l, i, lo:lo + n])
            else:
                for i in range(B):
                    cells.gru_reset(z[i], h_prev[i, lo:lo + n], rh[l, i, lo:lo + n])
                phase += 1
                barrier(sync, worker, workers, phase)          # rh[l] whole: the candidate reads it
                layer_pre_activations(l, worker, rh[l], h_out[l - 1], tok, emb_c, w_xc, w_hc,
                                      wtc0, wtc_up, b_c, xin, z_c)
                for i in range(B):
                    cells.gru_update(z[i, n:2 * n], z_c[i], h_prev[i, lo:lo + n], h_out[l, i, lo:lo + n])
            phase += 1
            barrier(sync, worker, workers, phase)
        if s < F:
            tok[:] = forced[s]
            continue
        if wt_y.size > 0:
            matmul_nt(h_out[L - 1], wt_y, logits)
            add_bias(logits, b_y)
        else:
            set_rows(logits, b_y)
            add_row_product(h_out[L - 1, 0], w_y, logits[0])
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
