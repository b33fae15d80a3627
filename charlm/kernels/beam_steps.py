"""Beam search: the whole search loop, one kernel call per chunk of steps (Numba).

The beam holds at most K hypotheses (continuations of the prime), each live or finished. Per step:

    rows       the live hypotheses (and the greedy one while it is not among them) advance side
               by side; row j reads the state of row parent[j] of the step before (a gather:
               states are never copied to reorder them)
    layers     z = W_x[token] + b + h_{t-1} W_h for layer 0, z = [h_below | h_{t-1}] [W_x; W_h] + b
               above it (one product per layer, :func:`product_nt`), then the cell update of
               ``kernels.cells`` (the GRU's candidate block reads [h_below | r * h_{t-1}])
    log p      log softmax(h_top W_y + b_y) in float64, over the whole vocabulary (as scoring does)
    candidates the finished hypotheses of the beam, unchanged, and every extension (j, v) of a live
               one by a token v that ``allowed`` marks (row 0 for the first token of a text without
               a prime, row 1 after: ``charlm.text.vocab.drawable``, and <EOS> only if it ends one):
               log P(j v) = log P(j) + log p_j(v)
    rank       score = log P / n^alpha with n the hypothesis's tokens (alpha = 0: log P itself)
    keep       the K best candidates; an extension by <EOS> or one whose last tokens
               spell a stop sequence is finished, the others live on.

With one row per live hypothesis, K = 1 is greedy decoding. A wider beam can prune the greedy path,
so for K > 1 the greedy path is followed too (B = K + 1 rows at most): while it is one of the
beam's live hypotheses it shares that row (``counts[GREEDY_ALIAS]``); once pruned it gets a row of
its own after the beam's and its history column K. The caller ranks its result with the beam's,
so the best result is never less probable than the greedy one.

The search ends at ``length`` steps, or when no live hypothesis is left and the greedy row (if any)
has ended or cannot enter the beam any more: with log P <= 0 never growing, a hypothesis of log P
can score at most log P / length^alpha.

Workers split each step's hidden units as in ``kernels.sampling`` (weights packed per worker by
``charlm.generation.sampler.pack``, transposed by ``charlm.generation.beam.transposed``; a barrier after each layer);
each computes the output layer and the selection itself, on identical numbers, so both choose the
same rows without another barrier. Only worker 0 writes the state back.

State, carried from call to call (B rows, L layers, H units, M the longest stop sequence):
    h, c      (2, L, B, H) float32, double-buffered: tick t reads buffer t % 2 (gathered through
              ``rows``) and writes the other
    rh        (L, B, H) float32 scratch for the GRU's r * h
    rows      (B,) int64: the row of the step before that each row continues
    tokens    (B,) int64: each row's next input
    log_p     (B,) float64: each row's log P
    tails     (B, M) int64: each row's last M generated tokens, -1 before the first
    finished  (K, FIELDS) float64: the beam's finished hypotheses, best first
    greedy    (FIELDS,) float64: the greedy row's result once it has ended
    counts    (COUNTS,) int64: live rows, finished hypotheses, greedy path live, the beam row
              it shares (-1: its own row), search steps, ticks (steps with the prime's), done
Written for each step t and row j: back_parent[t, j], back_token[t, j], back_logp[t, j], from
which :func:`trace` reads a hypothesis back. A finished hypothesis has no row at its last step:
its record holds that step, the parent row and the last token (its fields below).
"""
import numpy as np
from numba import njit

from . import cells
from .linalg import matmul_nt
from .draw import LSTM, RNN, add_bias, barrier, pre_activations

KERNEL = dict(cache=True, error_model="numpy", nogil=True)

EOS_ID = 0

# fields of a hypothesis record (finished, greedy) and of a candidate
SCORE, LOG_P, STEP, PARENT, TOKEN, TOKEN_LOG_P, LENGTH, KIND, REF = range(9)
FIELDS = 9
# kinds: how a hypothesis ended (LIVE: it has not), and KEPT: a finished one carried forward
LIVE, EOS, STOP, CAP, KEPT = 0, 1, 2, 3, 4
# entries of counts
LIVE_ROWS, FINISHED, GREEDY_LIVE, GREEDY_ALIAS, STEPS, TICKS, DONE = range(7)
COUNTS = 7


@njit(**KERNEL)
def normalized(log_p, n, alpha):
    """The rank of a hypothesis of n tokens: log P / n^alpha."""
    return log_p if alpha == 0.0 or n == 0 else log_p / np.float64(n) ** alpha


@njit(**KERNEL)
def offer(cand, count, score, log_p, kind, parent, token, token_log_p, n, ref):
    """Insert a candidate into cand (K, FIELDS), kept sorted best first (ties: the earlier
    offered first); returns the new count. A candidate no better than the K-th is dropped."""
    K = cand.shape[0]
    if count == K:
        if score <= cand[K - 1, SCORE]:
            return count
        pos = K - 1
    else:
        pos = count
        count += 1
    while pos > 0 and cand[pos - 1, SCORE] < score:
        for f in range(FIELDS):
            cand[pos, f] = cand[pos - 1, f]
        pos -= 1
    cand[pos, SCORE] = score
    cand[pos, LOG_P] = log_p
    cand[pos, KIND] = kind
    cand[pos, PARENT] = parent
    cand[pos, TOKEN] = token
    cand[pos, TOKEN_LOG_P] = token_log_p
    cand[pos, LENGTH] = n
    cand[pos, REF] = ref
    return count


@njit(**KERNEL)
def log_softmax_row(z, out):
    """out (V,) float64 = log softmax(z) for logits z (V,) (m = max(z) keeps exp from overflowing)."""
    m = np.float64(z[0])
    for i in range(1, z.shape[0]):
        m = max(m, np.float64(z[i]))
    s = 0.0
    for i in range(z.shape[0]):
        s += np.exp(np.float64(z[i]) - m)
    shift = m + np.log(s)
    for i in range(z.shape[0]):
        out[i] = np.float64(z[i]) - shift


@njit(**KERNEL)
def mark_stops(tail, generated, stops, stop_lengths, mask, value):
    """mask[v] = value for every token v that would complete a stop sequence after a hypothesis
    whose last tokens are tail (M,) and that has generated this many tokens. Stop sequences are
    rows of stops (S, M), the first stop_lengths[s] entries used; they end within the generated
    text, never in the prime."""
    M = tail.shape[0]
    for s in range(stops.shape[0]):
        n = stop_lengths[s]
        if generated < n - 1:
            continue
        match = True
        for k in range(n - 1):
            if tail[M - (n - 1) + k] != stops[s, k]:
                match = False
                break
        if match:
            mask[stops[s, n - 1]] = value


@njit(**KERNEL)
def push_tail(src, token, dst):
    """dst = src shifted left by one, token last (dst may be src)."""
    M = src.shape[0]
    for k in range(M - 1):
        dst[k] = src[k + 1]
    if M > 0:
        dst[M - 1] = token


@njit(**KERNEL)
def beam_steps(cell, emb, wt0, wt_up, b, emb_c, wtc0, wtc_up, b_c, wt_y, b_y,
               h, c, rh, rows, tokens, log_p, tails, finished, greedy, counts,
               forced, steps, length, allowed, stops, stop_lengths, alpha,
               back_parent, back_token, back_logp, sync, worker, workers):
    """Read the forced tokens (the prime, on the first call), then run up to ``steps`` search
    steps, stopping early at ``length`` steps or when the search is done (counts[DONE]).
    Returns the number of search steps run."""
    L = h.shape[1]
    H = h.shape[3]
    B = tokens.shape[0]
    K = finished.shape[0]
    V = wt_y.shape[0]
    n = H // workers
    lo = worker * n
    width = wt0.shape[1]
    z = np.empty((B, width), np.float32)
    z_c = np.empty((B, n), np.float32)
    hp = np.empty((B, H), np.float32)              # the gathered h_{t-1} of a layer
    xin = np.empty((B, 2 * H), np.float32)         # [h of the layer below | h_{t-1}]
    logits = np.empty((B, V), np.float32)
    lp = np.empty((B, V), np.float64)
    cand = np.empty((K, FIELDS), np.float64)
    mask = np.zeros(V, np.bool_)
    # local copies: both workers run the same selection; worker 0 writes them back
    row, tok, logp = rows.copy(), tokens.copy(), log_p.copy()
    tail, new_tail = tails.copy(), tails.copy()
    fin, new_fin = finished.copy(), finished.copy()
    best_greedy = greedy.copy()
    live, nfin, greedy_live = counts[LIVE_ROWS], counts[FINISHED], counts[GREEDY_LIVE]
    alias = counts[GREEDY_ALIAS]
    t, tick, done = counts[STEPS], counts[TICKS], counts[DONE]
    has_greedy = B > K
    phase = 0
    F = forced.shape[0]
    ran = 0
    s = 0
    while s < F + steps and done == 0 and (s < F or t < length):
        # rows 0 .. live-1 hold the beam's live hypotheses; row `live`, the greedy one when it
        # has left the beam (alias < 0)
        separate = has_greedy and greedy_live == 1 and alias < 0
        R = live + 1 if separate else live
        q = tick % 2
        h_in, h_out = h[q], h[1 - q]
        c_in, c_out = c[q], c[1 - q]
        for l in range(L):
            for i in range(R):
                hp[i] = h_in[l, row[i]]
            pre_activations(l, worker, hp[:R], h_out[l - 1, :R], tok, emb, wt0, wt_up, b,
                            xin[:R], z[:R])
            if cell == LSTM:
                for i in range(R):
                    cells.lstm_update(z[i], c_in[l, row[i], lo:lo + n], c_out[l, i, lo:lo + n],
                                      h_out[l, i, lo:lo + n])
            elif cell == RNN:
                for i in range(R):
                    cells.rnn_update(z[i], h_out[l, i, lo:lo + n])
            else:
                for i in range(R):
                    cells.gru_reset(z[i], hp[i, lo:lo + n], rh[l, i, lo:lo + n])
                phase += 1
                barrier(sync, worker, workers, phase)
                pre_activations(l, worker, rh[l, :R], h_out[l - 1, :R], tok, emb_c, wtc0,
                                wtc_up, b_c, xin[:R], z_c[:R])
                for i in range(R):
                    cells.gru_update(z[i, n:2 * n], z_c[i], hp[i, lo:lo + n], h_out[l, i, lo:lo + n])
            phase += 1
            barrier(sync, worker, workers, phase)
        tick += 1
        if s < F:
            for i in range(R):
                row[i] = i
                tok[i] = forced[s]
            s += 1
            continue
        matmul_nt(h_out[L - 1, :R], wt_y, logits[:R])
        add_bias(logits[:R], b_y)
        for i in range(R):
            log_softmax_row(logits[i], lp[i])
        drawable = allowed[0] if tick == 1 else allowed[1]     # tick 1: the first, no prime

        # the beam: the finished hypotheses kept, then every extension of a live one
        count = 0
        for f in range(nfin):
            count = offer(cand, count, fin[f, SCORE], fin[f, LOG_P], KEPT, 0, 0, 0.0,
                          fin[f, LENGTH], f)
        for j in range(live):
            mark_stops(tail[j], t, stops, stop_lengths, mask, True)
            for v in range(V):
                if not drawable[v]:
                    continue
                total = logp[j] + lp[j, v]
                score = normalized(total, t + 1, alpha)
                if count == K and score <= cand[K - 1, SCORE]:
                    continue
                kind = EOS if v == EOS_ID else (STOP if mask[v] else LIVE)
                count = offer(cand, count, score, total, kind, j, v, lp[j, v], t + 1, 0)
            mark_stops(tail[j], t, stops, stop_lengths, mask, False)

        # the greedy row's choice, before the rows are renumbered
        g_row = alias if alias >= 0 else live
        g_best, g_kind = -1, LIVE
        if has_greedy and greedy_live == 1:
            for v in range(V):
                if drawable[v] and (g_best < 0 or lp[g_row, v] > lp[g_row, g_best]):
                    g_best = v
            mark_stops(tail[K], t, stops, stop_lengths, mask, True)
            g_kind = EOS if g_best == EOS_ID else (STOP if mask[g_best] else LIVE)
            mark_stops(tail[K], t, stops, stop_lengths, mask, False)

        new_live, new_nfin = 0, 0
        new_alias = -1
        for r in range(count):
            kind = int(cand[r, KIND])
            if kind == KEPT:
                new_fin[new_nfin] = fin[int(cand[r, REF])]
                new_nfin += 1
                continue
            parent, v = int(cand[r, PARENT]), int(cand[r, TOKEN])
            if kind != LIVE:
                new_fin[new_nfin] = cand[r]
                new_fin[new_nfin, STEP] = t
                new_nfin += 1
                continue
            if parent == alias and v == g_best:
                new_alias = new_live
            row[new_live] = parent
            tok[new_live] = v
            logp[new_live] = cand[r, LOG_P]
            push_tail(tail[parent], v, new_tail[new_live])
            if worker == 0:
                back_parent[t, new_live] = parent
                back_token[t, new_live] = v
                back_logp[t, new_live] = cand[r, TOKEN_LOG_P]
            new_live += 1
        for j in range(new_live):
            tail[j] = new_tail[j]
        fin, new_fin = new_fin, fin
        live, nfin = new_live, new_nfin

        if has_greedy and greedy_live == 1:
            # its history: beam column `alias` while it is in the beam, column K once it has left
            g_column = alias if alias >= 0 else K
            logp[K] += lp[g_row, g_best]
            push_tail(tail[K], g_best, tail[K])
            if g_kind != LIVE:
                greedy_live = 0
                best_greedy[SCORE] = normalized(logp[K], t + 1, alpha)
                best_greedy[LOG_P] = logp[K]
                best_greedy[STEP] = t
                best_greedy[PARENT] = g_column
                best_greedy[TOKEN] = g_best
                best_greedy[TOKEN_LOG_P] = lp[g_row, g_best]
                best_greedy[LENGTH] = t + 1
                best_greedy[KIND] = g_kind
            elif new_alias < 0:
                row[live], tok[live] = g_row, g_best
                if worker == 0:
                    back_parent[t, K] = g_column
                    back_token[t, K] = g_best
                    back_logp[t, K] = lp[g_row, g_best]
            alias = new_alias
        t += 1
        ran += 1
        s += 1
        if live == 0:
            done = 1
            if has_greedy and greedy_live == 1:
                if nfin < K or normalized(logp[K], length, alpha) > fin[nfin - 1, SCORE]:
                    done = 0       # the greedy row may still enter the beam
    if worker == 0:
        rows[:] = row
        tokens[:] = tok
        log_p[:] = logp
        tails[:] = tail
        finished[:] = fin
        greedy[:] = best_greedy
        counts[LIVE_ROWS] = live
        counts[FINISHED] = nfin
        counts[GREEDY_LIVE] = greedy_live
        counts[GREEDY_ALIAS] = alias
        counts[STEPS] = t
        counts[TICKS] = tick
        counts[DONE] = done
    return ran


@njit(**KERNEL)
def trace(back_parent, back_token, back_logp, step, row, tokens, token_logps):
    """Read back the hypothesis whose last token is at (step, row) of the back arrays: writes its
    tokens and their log-probabilities, first to last, into tokens[:step + 1], token_logps[:step + 1]."""
    for t in range(step, -1, -1):
        tokens[t] = back_token[t, row]
        token_logps[t] = back_logp[t, row]
        row = back_parent[t, row]
