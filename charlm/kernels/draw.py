"""Text generation: the whole sampling loop, one kernel call per chunk of steps (Numba).

Each step advances every sample through the stack (:func:`charlm.kernels.stack_step.stack_step`,
which also gives the equations, the weights' layouts and how two workers split a step), reads
the logits, and draws:

    p = softmax((logits - max) / temperature) over the drawable tokens (row 0 of ``drawable``
    for the first token of a text without a prime, row 1 after: see
    ``charlm.text.vocab.drawable``), restricted to the top_k most probable, then to the smallest
    most-probable set holding top_p of the rest; token = the first k with cumsum(p)_k > u * sum(p),
    u ~ U[0, 1) given. Temperature 0 takes the argmax instead.

"Most probable first" orders equal probabilities by token id (a stable sort), so that a seed
gives the same text on every machine.

A single sample reads the weights as :class:`~charlm.kernels.stack_step.RowWeights`, and its
hidden units can be split between two workers; several samples (one worker;
``charlm.generation.sampler.Batch`` runs one group per core) read
:class:`~charlm.kernels.stack_step.TransposedWeights`, as the beam search does.
"""
import numpy as np
from numba import njit

from .barrier import barrier
from .stack_step import output_logits, output_parts, stack_step, step_buffers

KERNEL = dict(cache=True, error_model="numpy", nogil=True)

EOS_ID = 0


# ---- the draw ---------------------------------------------------------------------------------

@njit(**KERNEL)
def row_after(drawable, token):
    """The row of drawable (2 + 2C, V) that holds the tokens drawable after ``token``: row
    2 + C + c if row 2 + c marks token as one of class c, else row 1. A word model has C = 2
    (``charlm.text.words.WordVocab.following``: no word after a word, no run of spaces after
    one), so that what is drawn reads back as the same tokens; a character model has C = 0."""
    classes = (drawable.shape[0] - 2) // 2
    for c in range(classes):
        if drawable[2 + c, token]:
            return 2 + classes + c
    return 1


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
    # most probable first, equal ones by token id (stable); the undrawable (p = 0) last
    order = np.argsort(-p, kind="mergesort")
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
def generate(cell, weights, state, scratch, tokens, done, step0, forced, uniforms, temperature,
             top_k, top_p, drawable, match, stop_at_eos, out, sync, worker, workers):
    """Run len(forced) + len(uniforms) steps (fewer if all stop) on B = len(tokens) samples.

    weights: a layout of ``kernels.stack_step``. State, carried from call to call: state = (h, c,
    rh) as ``kernels.stack_step`` describes them, tokens (B,) the current inputs, int64, done (B,)
    the samples that have stopped. step0 is the number of steps run by earlier calls.

    The first len(forced) steps read the prime: their next input is forced[s], nothing is drawn.
    Then each step draws the next token of every sample with uniforms[s] (B,) and writes it to
    out[s] (B,); a sample that has drawn <EOS> with stop_at_eos is done and gets -1 from then on.
    drawable (2 + 2C, V) bool: the tokens that may be drawn first (when step0 + s == 0: no
    prime) and later, and C classes of tokens after which fewer may be drawn
    (:func:`row_after`; C = 0 for characters).
    match = (table, distance, accepting, states, left, eos_ends): a pattern every sample must
    match (``charlm.generation.pattern``; a table of 0 rows for none). states (B,) int32 is each
    sample's state of the automaton, carried from call to call, and left the draws left at the
    start of this call; each draw is further restricted by :func:`match_choices`.
    scratch (2, B, V + 1) float32 holds the logits: worker k's in scratch[k], or, when the
    workers split the output layer (``kernels.stack_step.output_parts``), both parts in scratch[0]
    (a part is ceil(V / 2) wide).
    Returns the number of drawing steps run. Only worker 0 writes out, tokens, done and states.
    """
    h = state[0]
    L, H = h.shape[1], h.shape[3]
    B = tokens.shape[0]
    V = drawable.shape[1]
    buffers = step_buffers(weights, B, H, workers)
    split = output_parts(weights) > 1
    logits = scratch[0] if split else scratch[worker]
    p = np.empty(V, np.float64)
    tok = tokens.copy()
    finished = done.copy()
    live = B - np.count_nonzero(finished)
    table, distance, accepting, states, left, eos_ends = match
    constrained = table.shape[0] > 0
    where = states.copy()                  # the automaton's state of each sample
    mask = np.empty(V, np.bool_)
    phase = 0
    F, S = forced.shape[0], uniforms.shape[0]
    for s in range(F + S):
        tick = step0 + s
        phase = stack_step(cell, weights, state, tick, None, tok, B, buffers, sync, worker,
                           workers, phase)
        if s < F:
            tok[:] = forced[s]
            continue
        output_logits(weights, h[1 - tick % 2, L - 1], logits, worker)
        if split:
            # The other part is read once both are written; a worker writes the next step's
            # only after the other has passed this step's draw (the layers' barriers).
            phase += 1
            barrier(sync, worker, workers, phase)
        t = s - F
        for i in range(B):
            if finished[i]:
                out[t, i] = -1
                continue
            allowed = drawable[0] if tick == 0 else drawable[row_after(drawable, tok[i])]
            if constrained:
                if not match_choices(table, distance, accepting, where[i], left - t, eos_ends,
                                     allowed, mask):
                    mask[EOS_ID] = True        # cannot happen (see match_choices): end the text
                allowed = mask
            tok[i] = draw(logits[i, :V], uniforms[t, i], temperature, top_k, top_p, allowed, p)
            out[t, i] = tok[i]
            if constrained and tok[i] != EOS_ID:
                where[i] = table[where[i], tok[i]]
            if stop_at_eos and tok[i] == EOS_ID:
                finished[i] = True
                live -= 1
        if live == 0:
            S = t + 1
            break
    if worker == 0:
        tokens[:] = tok
        done[:] = finished
        states[:] = where
    return S


@njit(**KERNEL)
def match_choices(table, distance, accepting, state, remaining, eos_ends, allowed, mask):
    """mask (V,) = the tokens of allowed that keep the text on a path to a full match of the
    pattern, from ``state`` with ``remaining`` draws left, this one included: a character v whose
    next state t = table[state, v] exists and has distance[t] <= remaining - 1. <EOS> ends the
    text: only in an accepting state, and without ``eos_ends`` (a stream, whose model has no end
    of text) only where no character may follow. Returns whether any token is left, which holds
    whenever distance[state] <= remaining (the sampler refuses a pattern that cannot be matched
    in the length, and every draw keeps this true for the next)."""
    nxt = table[state]
    any_char = False
    for v in range(mask.shape[0]):
        t = nxt[v]
        ok = allowed[v] and t >= 0 and distance[t] <= remaining - 1
        mask[v] = ok
        any_char = any_char or ok
    mask[EOS_ID] = allowed[EOS_ID] and accepting[state] and (eos_ends or not any_char)
    return any_char or mask[EOS_ID]
