"""Filling in missing text: every blank of a text replaced by the most probable token under a
model, with the probabilities of the alternatives. For a character model a blank is one blank
character (``_`` by default) and stands for one character; for a word model (``--tokens
words``) a blank is a run of them (``___``) and stands for one whole word
(:meth:`charlm.text.vocab.Vocab.blanks`).

Blanks are filled from left to right, each fill then read as part of the text by the predictions
that follow. How a blank's distribution is found depends on the model:

- a bidirectional model (``charlm.network.bidirectional``): p(c_t | the rest) in one pass. The backward
  stack reads the text once from its end, with the blanks not filled yet read as ``<UNK>``; the
  forward stack reads the text up to each blank, earlier blanks filled.
- a left-to-right model, by rescoring: each candidate c at blank t is scored by the
  probability of the text with c in place, up to the next blank (to the end of the text, with
  the closing ``<EOS>`` in lines mode, after the last blank):

      p(c | the rest) ∝ P(c_1 .. c_{t-1} c c_{t+1} .. c_{u-1})   (u: the next blank)

  exact for a text with one blank, and it uses the right context as far as the next blank. The
  candidates are the columns of one forward pass from the state before the blank, one pass of
  u - t steps per candidate: every character of a character model; for a word model, the
  SHORTLIST words most probable under the text before the blank, since a pass costs each
  column V x H products a step and a word vocabulary holds thousands.
- ``left_only``: the left-to-right model's next-token prediction alone, p(c | c_1 .. c_{t-1}),
  what sampling draws from; it ignores everything after the blank.

Probabilities are over the candidates (:meth:`charlm.text.vocab.Vocab.fillers`: a character
model's characters, a word model's words; never ``<EOS>`` or ``<UNK>``), renormalised. Tokens
outside the vocabulary are read as ``<UNK>``, as ``score`` reads them.
"""
from dataclasses import dataclass
from functools import partial

import numpy as np

from ..network.bidirectional import Cloze
from ..errors import UsageError
from ..network.engine import Engine, softmax
from ..network.parallel import blas_for
from ..text.vocab import EOS_ID, UNK_ID, require_unicode

SHORTLIST = 256         # rescoring's candidates at most: the most probable before the blank


@dataclass
class Blank:
    """One filled blank: its index in the input text (in characters, from 0), the token chosen,
    its probability, and the ``top`` most probable tokens [(token, prob)], best first. ``key``
    names the token in JSON: "char" for a character model, "word" for a word model."""
    position: int
    token: str
    prob: float
    top: list
    key: str = "char"

    @property
    def char(self):
        """The token chosen, by the name it had before word models (a character, for a character
        model)."""
        return self.token

    def to_json(self):
        return {"position": self.position, self.key: self.token, "prob": self.prob,
                "top": [[c, p] for c, p in self.top]}


@dataclass
class Filled:
    """A text with its blanks filled (``text``), as given (``input``), and each blank."""
    input: str
    text: str
    blanks: list
    unknown: list       # tokens of the text outside the vocabulary, read as <UNK>
    spans: list         # (start, end) of each fill in text

    def to_json(self):
        return {"input": self.input, "text": self.text,
                "blanks": [b.to_json() for b in self.blanks], "unknown": self.unknown}


def fill(model, text, blank="_", top=3, left_only=False):
    """Fill in every blank of text (one text: returns a :class:`Filled`; a list: a list).
    ``blank``: the character that marks one. ``top``: how many alternatives each blank reports.
    ``left_only`` (left-to-right models): the next-token prediction alone instead of
    rescoring."""
    texts = [text] if isinstance(text, str) else list(text)
    check_options(model, texts, blank, top, left_only)
    fillers = model.vocab.fillers()
    if model.config.bidirectional:
        method = partial(_cloze, Cloze(model.network), fillers)
    elif left_only:
        method = partial(_left_only, Engine(model.network), fillers)
    else:
        shortlist = SHORTLIST if model.vocab.kind == "words" else None
        method = partial(_rescore, Engine(model.network), fillers, shortlist,
                         lines=model.config.mode == "lines")
    # One column at a time, the products are tiny (a few rows by H): the thread runs them alone,
    # and BLAS's own threads would only hand them over and spin, which makes left-context fills
    # much slower (``benchmarks/bench_fill.py`` reports blanks filled per second). Rescoring's
    # many columns fan out over the cores, one BLAS thread each.
    with blas_for(1):
        results = [_fill_one(model.vocab, method, t, blank, top) for t in texts]
    return results[0] if isinstance(text, str) else results


def check_options(model, texts, blank, top, left_only):
    """Raise UsageError, naming the option, for anything fill cannot do."""
    if not isinstance(blank, str) or len(blank) != 1:
        raise UsageError(f"--blank must be one character, not {blank!r}")
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise UsageError(f"--top must be a whole number >= 1, not {top!r}")
    if left_only and model.config.bidirectional:
        raise UsageError("--left-only needs a left-to-right model: a bidirectional one always "
                         "reads both sides")
    for t in texts:
        if not isinstance(t, str):
            raise UsageError(f"can only fill in text, not {type(t).__name__}")
        require_unicode(t)
        model.vocab.blanks(t, blank)


def _fill_one(vocab, method, text, blank, top):
    pieces, positions = vocab.blanks(text, blank)
    ids, at = [], []                  # token ids, <UNK> at each blank; the blanks' indices
    for k, piece in enumerate(pieces):
        ids.extend(vocab.encode(piece).tolist())
        if k < len(positions):
            at.append(len(ids))
            ids.append(UNK_ID)
    ids = np.array(ids, np.int32)
    distributions = method(ids, at)              # fills ids in place
    key = "word" if vocab.kind == "words" else "char"
    filled, spans, results = pieces[0], [], []
    for t, probs, piece, position in zip(at, distributions, pieces[1:], positions):
        token = vocab.tokens[ids[t]]
        best = [int(k) for k in np.argsort(-probs, kind="stable")[:top] if probs[k] > 0]
        results.append(Blank(position, token, float(probs[ids[t]]),
                             [(vocab.tokens[k], float(probs[k])) for k in best], key))
        spans.append((len(filled), len(filled) + len(token)))
        filled += token + piece
    unknown = list(dict.fromkeys(u for piece in pieces for u in vocab.unknown(piece)))
    return Filled(text, filled, results, unknown, spans)


def _choose(ids, t, scores, fillers):
    """Fill blank t with the best candidate by scores (V,): log-probabilities up to a constant,
    -inf for a token that is no candidate; returns the candidates' probabilities (V,)."""
    probs = softmax(np.where(fillers, scores, -np.inf))
    ids[t] = int(np.argmax(probs))
    return probs


def _cloze(cloze, fillers, ids, blanks):
    h_bwd = cloze.backward_outputs(ids[:, None])               # (n, 1, H), later blanks <UNK>
    inputs = np.concatenate([[EOS_ID], ids]).astype(np.int32)  # inputs[t]: c_t's last input
    state = cloze.forward.zero_state(1)
    start, distributions = 0, []
    for t in blanks:
        h_fwd = cloze.forward_outputs(inputs[start:t + 1, None], state)[-1:]   # (1, 1, H)
        logp = cloze.log_softmax(h_fwd, h_bwd[t:t + 1])[0, 0]
        distributions.append(_choose(ids, t, logp, fillers))
        inputs[t + 1] = ids[t]
        start = t + 1
    return distributions


def _left_only(engine, fillers, ids, blanks):
    inputs = np.concatenate([[EOS_ID], ids]).astype(np.int32)
    state = engine.zero_state(1)
    start, distributions = 0, []
    for t in blanks:
        logp = engine.log_softmax(inputs[start:t + 1, None], state)[-1, 0]
        distributions.append(_choose(ids, t, logp, fillers))
        inputs[t + 1] = ids[t]
        start = t + 1
    return distributions


def _rescore(engine, fillers, shortlist, ids, blanks, lines):
    """Blank t's candidates as the columns of one pass over inputs[t .. end]: c_{t-1}, the
    candidate, then the text up to the next blank, predicting the candidate and each token
    after it (and the closing <EOS> in lines mode, after the last blank)."""
    n = len(ids)
    inputs = np.concatenate([[EOS_ID], ids]).astype(np.int32)
    targets = np.concatenate([ids, [EOS_ID if lines else -1]]).astype(np.int32)
    state = engine.zero_state(1)           # after reading inputs[:start]
    start, distributions = 0, []
    for k, t in enumerate(blanks):
        if start < t:
            engine.log_probs(inputs[start:t, None], np.full((t - start, 1), -1, np.int32), state)
        candidates = _shortlist(engine, fillers, shortlist, inputs[t], state)
        following = blanks[k + 1] if k + 1 < len(blanks) else None
        end = following - 1 if following is not None else n if lines else n - 1
        x = np.repeat(inputs[t:end + 1, None], len(candidates), axis=1)     # (steps, K)
        y = np.repeat(targets[t:end + 1, None], len(candidates), axis=1)
        x[1:2], y[0] = candidates, candidates
        columns = np.repeat(state, len(candidates), axis=2)
        scores = np.full(len(fillers), -np.inf)
        scores[candidates] = engine.log_probs(x, y, columns).sum(axis=0)
        distributions.append(_choose(ids, t, scores, fillers))
        inputs[t + 1] = targets[t] = ids[t]
        chosen = int(np.flatnonzero(candidates == ids[t])[0])
        state = columns[:, :, chosen:chosen + 1].copy()
        start = end + 1
    return distributions


def _shortlist(engine, fillers, size, last_input, state):
    """int32 ids of the ``size`` candidates most probable after last_input from state (all of
    them when size is None or there are no more; ties in token order)."""
    candidates = np.flatnonzero(fillers).astype(np.int32)
    if size is None or len(candidates) <= size:
        return candidates
    logp = engine.log_softmax(np.array([[last_input]], np.int32), state.copy())[0, 0]
    return np.sort(candidates[np.argsort(-logp[candidates], kind="stable")[:size]])
