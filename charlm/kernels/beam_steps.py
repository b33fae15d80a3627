"""Beam search: the whole search loop, one kernel call per chunk of steps (Numba).

The beam holds at most K hypotheses (continuations of the prime), each live or finished. Per step:

    rows       the live hypotheses (and the greedy one while it is not among them) advance side
               by side; row j reads the state of row parent[j] of the step before (a gather:
               states are never copied to reorder them)
    layers     the step of the stack, :func:`charlm.kernels.stack_step.stack_step` (the weights as
               ``TransposedWeights``: one product per layer for all the rows)
    log p      log softmax(h_top W_y + b_y) in float64, over the whole vocabulary (``kernels.loss``,
               as scoring computes it)
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

Workers split each step's hidden units as ``kernels.stack_step`` describes (weights packed per
worker by ``charlm.generation.launch``; a barrier after each layer); each computes the output layer
and the selection itself, on identical numbers, so both choose the same rows without another
barrier. Only worker 0 writes the state back.

The kernel, :func:`beam_steps`, runs the step of the stack and then the search's own parts,
each a function: :func:`step_log_probs`, :func:`rank_candidates` (with :func:`offer`),
:func:`greedy_choice`, :func:`keep_best` (the back-pointers) and :func:`follow_greedy`.

State, carried from call to call (B rows, L layers, H units, M the longest stop sequence):
    state     (h, c, rh) of ``kernels.stack_step``: tick t reads buffer t % 2 of h and c (gathered
              through ``rows``) and writes the other
and the search's, ``search`` = (rows, tokens, log_p, tails, finished, greedy, counts):
    rows      (B,) int64: the row of the step before that each row continues
    tokens    (B,) int64: each row's next input
    log_p     (B,) float64: each row's log P
    tails     (B, M) int64: each row's last M generated tokens, -1 before the first
    finished  (K, FIELDS) float64: the beam's finished hypotheses, best first
    greedy    (FIELDS,) float64: the greedy row's result once it has ended
    counts    (COUNTS,) int64: live rows, finished hypotheses, greedy path live, the beam row
              it shares (-1: its own row), search steps, ticks (steps with the prime's), done
Written for each step t and row j, ``back`` = (back_parent, back_token, back_logp):
back_parent[t, j], back_token[t, j], back_logp[t, j] (int32, int32, float64), from which
:func:`trace` reads a hypothesis back. A finished hypothesis has no row at its last step:
its record holds that step, the parent row and the last token (its fields below).
"""
import numpy as np
from numba import njit

from .linalg import matmul_nt
from .loss import log_softmax_row
from .draw import match_choices, row_after
from .stack_step import stack_step, step_buffers

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
def beam_steps(cell, weights, state, search, back, forced, steps, length, allowed, match, stops,
               stop_lengths, alpha, sync, worker, workers):
    """Read the forced tokens (the prime, on the first call), then run up to ``steps`` search
    steps, stopping early at ``length`` steps or when the search is done (counts[DONE]).
    match: the pattern every hypothesis must match, as ``kernels.draw.generate`` takes it (its
    states (B,) each row's state of the automaton, the greedy path's in column K; ``left`` is
    not read: a row at step t has length - t steps left). Each row's extensions are those that
    :func:`kernels.draw.match_choices` allows, so every live hypothesis can still be completed
    to a match, and a stop sequence ends one only where the text with it is a full match.
    Returns the number of search steps run."""
    # local copies: both workers run the same selection; worker 0 writes them back
    row, tok, logp, tail, fin, best_greedy, cnt = copies(search)
    new_tail, new_fin = tail.copy(), fin.copy()
    h = state[0]
    L, B, H = h.shape[1], h.shape[2], h.shape[3]
    K = fin.shape[0]
    V = weights.b_y.shape[0]
    buffers = step_buffers(weights, B, H, workers)
    logits = np.empty((B, V), np.float32)
    lp = np.empty((B, V), np.float64)
    cand = np.empty((K, FIELDS), np.float64)
    mask = np.zeros(V, np.bool_)
    where, new_where = match[3].copy(), match[3].copy()
    rowmask = np.empty(V, np.bool_)
    has_greedy = B > K
    phase = 0
    F = forced.shape[0]
    ran = 0
    s = 0
    while s < F + steps and cnt[DONE] == 0 and (s < F or cnt[STEPS] < length):
        # rows 0 .. live-1 hold the beam's live hypotheses; row `live`, the greedy one when it
        # has left the beam (alias < 0)
        live, alias = cnt[LIVE_ROWS], cnt[GREEDY_ALIAS]
        greedy_live = has_greedy and cnt[GREEDY_LIVE] == 1
        R = live + 1 if greedy_live and alias < 0 else live
        phase = stack_step(cell, weights, state, cnt[TICKS], row, tok, R, buffers, sync, worker,
                           workers, phase)
        cnt[TICKS] += 1
        if s < F:
            for i in range(R):
                row[i] = i
                tok[i] = forced[s]
            s += 1
            continue
        t = cnt[STEPS]
        step_log_probs(weights, h[cnt[TICKS] % 2, L - 1, :R], logits[:R], lp[:R])
        first = cnt[TICKS] == 1         # the first token, without a prime: allowed[0]
        count = rank_candidates(cand, fin, cnt[FINISHED], lp, logp, tail, live, t, allowed,
                                first, tok, stops, stop_lengths, mask, alpha, match, where,
                                length - t, rowmask)
        # the greedy row's choice, before the rows are renumbered
        g_row = alias if alias >= 0 else live
        g_best, g_kind = -1, LIVE
        if greedy_live:
            drawable = allowed[0] if first else allowed[row_after(allowed, tok[g_row])]
            g_allowed = row_choices(match, where[K], length - t, drawable, rowmask)
            g_best, g_kind = greedy_choice(lp[g_row], g_allowed, tail[K], t, stops, stop_lengths,
                                           mask)
            g_kind = stop_matches(match, where[K], g_best, g_kind)
        new_alias = keep_best(cand, count, fin, new_fin, row, tok, logp, tail, new_tail, alias,
                              g_best, t, back, worker, cnt)
        follow_match(match, cand, count, where, new_where, cnt[LIVE_ROWS])
        fin, new_fin = new_fin, fin
        if greedy_live:
            follow_greedy(cnt, g_row, g_best, g_kind, new_alias, lp[g_row, g_best], row, tok, logp,
                          tail, best_greedy, t, alpha, back, worker)
            if match[0].shape[0] > 0 and g_best != EOS_ID:
                where[K] = match[0][where[K], g_best]
        cnt[STEPS] += 1
        ran += 1
        s += 1
        if cnt[LIVE_ROWS] == 0:
            cnt[DONE] = 1
            if has_greedy and cnt[GREEDY_LIVE] == 1:
                nfin = cnt[FINISHED]
                if nfin < K or normalized(logp[K], length, alpha) > fin[nfin - 1, SCORE]:
                    cnt[DONE] = 0       # the greedy row may still enter the beam
    if worker == 0:
        rows, tokens, log_p, tails, finished, greedy, counts = search
        rows[:] = row
        tokens[:] = tok
        log_p[:] = logp
        tails[:] = tail
        finished[:] = fin
        greedy[:] = best_greedy
        counts[:] = cnt
        match[3][:] = where
    return ran


@njit(**KERNEL)
def row_choices(match, state, remaining, drawable, rowmask):
    """The tokens a row in automaton state ``state`` may take (drawable, restricted by the
    pattern if there is one: ``kernels.draw.match_choices``; rowmask (V,) is scratch)."""
    table, distance, accepting, _, _, eos_ends = match
    if table.shape[0] == 0:
        return drawable
    match_choices(table, distance, accepting, state, remaining, eos_ends, drawable, rowmask)
    return rowmask


@njit(**KERNEL)
def stop_matches(match, state, v, kind):
    """kind, except that under a pattern an extension by v that completes a stop sequence
    ends the hypothesis only if the text with it is a full match (else it lives on)."""
    table, _, accepting, _, _, _ = match
    if kind == STOP and table.shape[0] > 0 and not accepting[table[state, v]]:
        return LIVE
    return kind


@njit(**KERNEL)
def follow_match(match, cand, count, where, new_where, live):
    """The automaton states of the live rows kept (rows 0..live-1, in the order keep_best
    numbered them): the state of each one's parent row after its token."""
    table = match[0]
    if table.shape[0] == 0:
        return
    j = 0
    for r in range(count):
        if int(cand[r, KIND]) == LIVE:
            new_where[j] = table[where[int(cand[r, PARENT])], int(cand[r, TOKEN])]
            j += 1
    for j in range(live):
        where[j] = new_where[j]


@njit(**KERNEL)
def copies(search):
    """Copies of the search's arrays (see the module docstring)."""
    rows, tokens, log_p, tails, finished, greedy, counts = search
    return (rows.copy(), tokens.copy(), log_p.copy(), tails.copy(), finished.copy(),
            greedy.copy(), counts.copy())


@njit(**KERNEL)
def step_log_probs(weights, h_top, logits, lp):
    """lp (R, V) float64 = log softmax(h_top W_y + b_y) for the top layer's h_top (R, H), with
    weights in the layout for several rows; logits (R, V) scratch. The bias is added inside the
    softmax, as scoring adds it (``kernels.loss``)."""
    matmul_nt(h_top, weights.wt_y, logits)
    for i in range(logits.shape[0]):
        log_softmax_row(logits[i], weights.b_y, lp[i])


@njit(**KERNEL)
def rank_candidates(cand, fin, nfin, lp, logp, tail, live, t, allowed, first, tok, stops,
                    stop_lengths, mask, alpha, match, where, remaining, rowmask):
    """Fill cand (K, FIELDS) with the K best candidates of step t, best first: the nfin finished
    hypotheses fin kept, then every extension of the live rows 0..live-1 (log P logp[j], log p
    lp[j]) by a token drawable after its last one tok[j] (``kernels.draw.row_after``; the first
    token's row when ``first``), and one the pattern allows from where[j] with ``remaining``
    steps left (:func:`row_choices`); an extension by <EOS> or that completes a stop sequence
    after tail[j] is of kind EOS or STOP (:func:`stop_matches`). mask (V,) is scratch, all
    False; rowmask (V,) scratch. Returns how many it holds."""
    K = cand.shape[0]
    V = lp.shape[1]
    count = 0
    for f in range(nfin):
        count = offer(cand, count, fin[f, SCORE], fin[f, LOG_P], KEPT, 0, 0, 0.0,
                      fin[f, LENGTH], f)
    for j in range(live):
        drawable = allowed[0] if first else allowed[row_after(allowed, tok[j])]
        ok = row_choices(match, where[j], remaining, drawable, rowmask)
        mark_stops(tail[j], t, stops, stop_lengths, mask, True)
        for v in range(V):
            if not ok[v]:
                continue
            total = logp[j] + lp[j, v]
            score = normalized(total, t + 1, alpha)
            if count == K and score <= cand[K - 1, SCORE]:
                continue
            kind = EOS if v == EOS_ID else (STOP if mask[v] else LIVE)
            kind = stop_matches(match, where[j], v, kind)
            count = offer(cand, count, score, total, kind, j, v, lp[j, v], t + 1, 0)
        mark_stops(tail[j], t, stops, stop_lengths, mask, False)
    return count


@njit(**KERNEL)
def greedy_choice(lp_row, drawable, tail_row, t, stops, stop_lengths, mask):
    """The greedy row's next token (the most probable drawable one, by its log p lp_row (V,))
    and its kind (LIVE, EOS or STOP after tail_row)."""
    best = -1
    for v in range(lp_row.shape[0]):
        if drawable[v] and (best < 0 or lp_row[v] > lp_row[best]):
            best = v
    mark_stops(tail_row, t, stops, stop_lengths, mask, True)
    kind = EOS if best == EOS_ID else (STOP if mask[best] else LIVE)
    mark_stops(tail_row, t, stops, stop_lengths, mask, False)
    return best, kind


@njit(**KERNEL)
def keep_best(cand, count, fin, new_fin, row, tok, logp, tail, new_tail, alias, g_best, t, back,
              worker, cnt):
    """Keep the ranked candidates cand[:count]: the finished ones into new_fin (a finished
    extension records step t), the live ones as rows 0.. of the next step (row, tok, logp, tail
    renumbered; worker 0 writes their back-pointers at step t). Sets cnt's live rows and finished
    hypotheses; returns the row the greedy path (row alias taking g_best) now shares, -1 if none."""
    back_parent, back_token, back_logp = back
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
    cnt[LIVE_ROWS], cnt[FINISHED] = new_live, new_nfin
    return new_alias


@njit(**KERNEL)
def follow_greedy(cnt, g_row, g_best, g_kind, new_alias, g_logp, row, tok, logp, tail,
                  best_greedy, t, alpha, back, worker):
    """Extend the greedy path (row g_row of the step) by g_best, of log p g_logp: its log P and
    tail are column K's; it ends (best_greedy records it) if g_kind is not LIVE, and otherwise
    takes the row after the beam's unless it shares the beam's row new_alias."""
    K = tail.shape[0] - 1          # the greedy path's column: the last of the K + 1 rows
    alias = cnt[GREEDY_ALIAS]
    # its history: beam column `alias` while it is in the beam, column K once it has left
    g_column = alias if alias >= 0 else K
    logp[K] += g_logp
    push_tail(tail[K], g_best, tail[K])
    if g_kind != LIVE:
        cnt[GREEDY_LIVE] = 0
        best_greedy[SCORE] = normalized(logp[K], t + 1, alpha)
        best_greedy[LOG_P] = logp[K]
        best_greedy[STEP] = t
        best_greedy[PARENT] = g_column
        best_greedy[TOKEN] = g_best
        best_greedy[TOKEN_LOG_P] = g_logp
        best_greedy[LENGTH] = t + 1
        best_greedy[KIND] = g_kind
    elif new_alias < 0:
        live = cnt[LIVE_ROWS]
        row[live], tok[live] = g_row, g_best
        if worker == 0:
            back_parent, back_token, back_logp = back
            back_parent[t, K] = g_column
            back_token[t, K] = g_best
            back_logp[t, K] = g_logp
    cnt[GREEDY_ALIAS] = new_alias


@njit(**KERNEL)
def trace(back_parent, back_token, back_logp, step, row, tokens, token_logps):
    """Read back the hypothesis whose last token is at (step, row) of the back arrays: writes its
    tokens and their log-probabilities, first to last, into tokens[:step + 1], token_logps[:step + 1]."""
    for t in range(step, -1, -1):
        tokens[t] = back_token[t, row]
        token_logps[t] = back_logp[t, row]
        row = back_parent[t, row]
