"""Filling in missing characters: every blank (``_`` by default) of a text replaced by the most
probable character under a model, with the probabilities of the alternatives.

Blanks are filled from left to right, each filled character then read as part of the text by the
predictions that follow. How a blank's distribution is found depends on the model:

- a bidirectional model (``charlm.network.bidirectional``): p(c_t | the rest) in one pass. The backward
  stack reads the text once from its end, with the blanks not filled yet read as ``<UNK>``; the
  forward stack reads the text up to each blank, earlier blanks filled.
- a left-to-right model, by rescoring: each candidate character c at blank t is scored by the
  probability of the text with c in place, up to the next blank (to the end of the text, with
  the closing ``<EOS>`` in lines mode, after the last blank):

      p(c | the rest) ∝ P(c_1 .. c_{t-1} c c_{t+1} .. c_{u-1})   (u: the next blank)

  exact for a text with one blank, and it uses the right context as far as the next blank. The
  candidates are the columns of one forward pass from the state before the blank, one pass of
  u - t steps per candidate.
- ``left_only``: the left-to-right model's next-character prediction alone, p(c | c_1 .. c_{t-1}),
  what sampling draws from; it ignores everything after the blank.

Probabilities are over the vocabulary's characters (``<EOS>`` and ``<UNK>`` are never a fill),
renormalised. Characters outside the vocabulary are read as ``<UNK>``, as ``score`` reads them.
"""
from dataclasses import dataclass
from functools import partial

import numpy as np

from ..network.bidirectional import Cloze
from ..errors import UsageError
from ..network.engine import Engine, softmax
from ..network.parallel import blas_for
from ..text.vocab import EOS_ID, UNK_ID, require_unicode

FIRST_CHAR = 2          # token ids below this are <EOS> and <UNK>, never a fill


@dataclass
class Blank:
    """One filled blank: its index in the text (in characters, from 0), the character chosen,
    its probability, and the ``top`` most probable characters [(char, prob)], best first."""
    position: int
    char: str
    prob: float
    top: list

    def to_json(self):
        return {"position": self.position, "char": self.char, "prob": self.prob,
                "top": [[c, p] for c, p in self.top]}


@dataclass
class Filled:
    """A text with its blanks filled (``text``), as given (``input``), and each blank."""
    input: str
    text: str
    blanks: list
    unknown: list       # characters of the text outside the vocabulary, read as <UNK>

    def to_json(self):
        return {"input": self.input, "text": self.text,
                "blanks": [b.to_json() for b in self.blanks], "unknown": self.unknown}


def fill(model, text, blank="_", top=3, left_only=False):
    """Fill in every ``blank`` character of text (one text: returns a :class:`Filled`; a list:
    a list). ``top``: how many alternatives each blank reports. ``left_only`` (left-to-right
    models): the next-character prediction alone instead of rescoring."""
    texts = [text] if isinstance(text, str) else list(text)
    from ..text.words import require_chars
    require_chars(model.vocab, "fill", "a blank stands for one character, a word model's tokens "
                  "are words")
    check_options(model, texts, blank, top, left_only)
    if model.config.bidirectional:
        method = partial(_cloze, Cloze(model.network))
    elif left_only:
        method = partial(_left_only, Engine(model.network))
    else:
        method = partial(_rescore, Engine(model.network), lines=model.config.mode == "lines")
    # One column at a time, the products are tiny (a few rows by H): the thread runs them alone,
    # and BLAS's own threads would only hand them over and spin, which makes left-context fills
    # about ten times slower on two cores (``benchmarks/bench_fill.py`` reports blanks filled per
    # second). Rescoring's many columns fan out over the cores, one BLAS thread each.
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
        if blank not in t:
            raise UsageError(f"no blank in {t!r}: mark each missing character with {blank!r} "
                             "(or choose the mark with --blank)")


def _fill_one(vocab, method, text, blank, top):
    blanks = [i for i, ch in enumerate(text) if ch == blank]
    ids = vocab.encode(text)
    ids[blanks] = UNK_ID
    distributions = method(ids, blanks)              # fills ids in place
    chars = vocab.tokens[FIRST_CHAR:]
    filled = list(text)
    results = []
    for t, probs in zip(blanks, distributions):
        best = np.argsort(-probs, kind="stable")[:top]
        filled[t] = vocab.tokens[ids[t]]
        results.append(Blank(t, filled[t], float(probs[ids[t] - FIRST_CHAR]),
                             [(chars[k], float(probs[k])) for k in best]))
    return Filled(text, "".join(filled), results, vocab.unknown(text.replace(blank, "")))


def _choose(ids, t, scores):
    """Fill blank t with the best of the candidates' scores (log-probabilities up to a constant,
    one per character id from FIRST_CHAR on); returns their probabilities."""
    probs = softmax(scores)
    ids[t] = FIRST_CHAR + int(np.argmax(probs))
    return probs


def _cloze(cloze, ids, blanks):
    h_bwd = cloze.backward_outputs(ids[:, None])               # (n, 1, H), later blanks <UNK>
    inputs = np.concatenate([[EOS_ID], ids]).astype(np.int32)  # inputs[t]: c_t's last input
    state = cloze.forward.zero_state(1)
    start, distributions = 0, []
    for t in blanks:
        h_fwd = cloze.forward_outputs(inputs[start:t + 1, None], state)[-1:]   # (1, 1, H)
        logp = cloze.log_softmax(h_fwd, h_bwd[t:t + 1])[0, 0]
        distributions.append(_choose(ids, t, logp[FIRST_CHAR:]))
        inputs[t + 1] = ids[t]
        start = t + 1
    return distributions


def _left_only(engine, ids, blanks):
    inputs = np.concatenate([[EOS_ID], ids]).astype(np.int32)
    state = engine.zero_state(1)
    start, distributions = 0, []
    for t in blanks:
        logp = engine.log_softmax(inputs[start:t + 1, None], state)[-1, 0]
        distributions.append(_choose(ids, t, logp[FIRST_CHAR:]))
        inputs[t + 1] = ids[t]
        start = t + 1
    return distributions


def _rescore(engine, ids, blanks, lines):
    """Blank t's candidates as the columns of one pass over inputs[t .. end]: c_{t-1}, the
    candidate, then the text up to the next blank, predicting the candidate and each character
    after it (and the closing <EOS> in lines mode, after the last blank)."""
    n, V = len(ids), engine.network.vocab_size
    candidates = np.arange(FIRST_CHAR, V, dtype=np.int32)
    inputs = np.concatenate([[EOS_ID], ids]).astype(np.int32)
    targets = np.concatenate([ids, [EOS_ID if lines else -1]]).astype(np.int32)
    state = engine.zero_state(1)           # after reading inputs[:start]
    start, distributions = 0, []
    for k, t in enumerate(blanks):
        if start < t:
            engine.log_probs(inputs[start:t, None], np.full((t - start, 1), -1, np.int32), state)
        following = blanks[k + 1] if k + 1 < len(blanks) else None
        end = following - 1 if following is not None else n if lines else n - 1
        x = np.repeat(inputs[t:end + 1, None], len(candidates), axis=1)     # (steps, K)
        y = np.repeat(targets[t:end + 1, None], len(candidates), axis=1)
        x[1:2], y[0] = candidates, candidates
        columns = np.repeat(state, len(candidates), axis=2)
        scores = engine.log_probs(x, y, columns).sum(axis=0)
        distributions.append(_choose(ids, t, scores))
        inputs[t + 1] = targets[t] = ids[t]
        state = columns[:, :, ids[t] - FIRST_CHAR:ids[t] - FIRST_CHAR + 1].copy()
        start = end + 1
    return distributions
