"""Scoring: the log-probability of a text under a model, and the same figures for a whole file.

The definition (docs/model.md, "The probability of a text"): from the zero state, with ``<EOS>``
as the first input,

    log P(c_1 .. c_n) = sum_t log p(c_t | <EOS>, c_1 .. c_{t-1})  [+ log p(<EOS> | <EOS>, c_1 .. c_n)]

the bracketed term in lines mode only. Characters outside the vocabulary count as ``<UNK>``.
Bits per character divide by the number of predicted tokens: n in stream mode, n + 1 in lines mode,
where the closing ``<EOS>`` counts as one character. It is a prediction the model makes like any
other, and training's loss averages over the same tokens, so the bits/char of ``score --file`` on
held-out text compare with the validation bits/char that training reports.

Texts are scored as one batch, one column each, padded with target -1. Files are read
incrementally and scored in batches of columns, so memory does not grow with the file (the
batched passes, their sizes and :class:`Score` are in :mod:`charlm.scoring.passes`; this module
decides which pass a text or a file takes):

- lines mode: every non-blank line is one independent example (as in training); lines are
  buffered, sorted by length and batched so that little padding is needed.
- stream mode: the exact value is one sequential pass (``exact=True``, batch 1, slow). The default
  cuts the file into segments of S characters, scored side by side (S grows with the file from
  ``MIN_SEGMENT`` to ``MAX_SEGMENT``, so the share of burn-in shrinks). Each segment but the
  first starts from the zero state ``BURN_IN`` characters early: the model reads those characters
  to warm its state, and their log-probabilities are not counted (the segment before counts them).
  The first segment starts exactly as the definition says. A character-level model forgets what it
  read a few hundred characters ago, so the result is close to the exact value, and the gap
  shrinks quickly as the burn-in grows (``BURN_IN`` = 128, ``charlm.network.engine``, shared with
  the bidirectional model's validation; docs/scoring-and-fill.md gives the gap measured).
  ``benchmarks/bench_score.py --exact`` measures the gap for any checkpoint; ``tests/test_score.py``
  holds the segments to the exact value for a model without memory, where any burn-in is exact.

Two other figures of a text or a file (docs/dynamic-evaluation.md):

- ``windows=N``: nanoGPT's protocol (its ``estimate_loss``): the mean loss over random windows of
  N targets, each read from the zero state with the window's first token as its only context, so
  a window reads N + 1 tokens. The windows start at positions drawn uniformly, with replacement,
  from a generator seeded by ``seed`` (``DEFAULT_WINDOWS`` of them, nanoGPT's 200 batches of 64;
  no more than the text has starting positions), and run side by side as columns of one no-grad
  pass. Early targets of a window see little context, so this figure is above the stateful one,
  where every token has all the text before it.
- ``dynamic``: the same figures while the model adapts to the text as it reads it
  (:mod:`charlm.scoring.dynamic`).
"""
from dataclasses import dataclass

import numpy as np

from ..errors import CorpusError, UsageError
from ..network.engine import Engine
from ..text.textfile import TextFile
from ..text.vocab import EOS, EOS_ID, require_unicode
from . import passes, words
from .options import DEFAULT_WINDOWS, check_windows, settings_from
from .passes import LN2, Score, Tally, pad_examples

READ_BYTES = 1 << 16   # file read size


@dataclass
class Windowed:
    """The figure of nanoGPT's protocol: the mean loss (nats per target) over ``count`` windows of
    ``length`` targets, their starts drawn with ``seed``."""
    loss: float
    length: int
    count: int
    seed: int

    @property
    def bits_per_char(self):
        return self.loss / LN2

    def to_json(self):
        return {"length": self.length, "count": self.count, "seed": self.seed,
                "bits_per_char": self.bits_per_char}


def windowed_loss(engine, ids, length, count=DEFAULT_WINDOWS, seed=0):
    """nanoGPT's protocol over token ids (the text's, no leading <EOS>): window j reads
    ids[s_j .. s_j + length - 1] from the zero state and predicts ids[s_j + 1 .. s_j + length],
    for starts s_j drawn uniformly from [0, len(ids) - length) with replacement; ``count`` is
    capped at that many starts. Returns a :class:`Windowed`."""
    starts_possible = len(ids) - length
    if starts_possible < 1:
        raise UsageError(f"windows of {length} targets need at least {length + 1} tokens of "
                         f"text; it has {len(ids)}")
    count = min(count, starts_possible)
    starts = np.random.default_rng(seed).integers(0, starts_possible, size=count)
    steps = np.arange(length)[:, None]
    total = 0.0
    for lo in range(0, count, passes.COLUMNS):
        s = starts[lo:lo + passes.COLUMNS][None, :]
        x = np.ascontiguousarray(ids[steps + s], np.int32)           # (length, B)
        y = np.ascontiguousarray(ids[steps + s + 1], np.int32)
        total += float(engine.log_probs(x, y, engine.zero_state(x.shape[1])).sum())
    return Windowed(-total / (count * length), int(length), int(count), int(seed))


# ---- texts ---------------------------------------------------------------------------------------

def score(model, text, per_char=False, dynamic=None, windows=None, num_windows=DEFAULT_WINDOWS,
          seed=0):
    """Score one text (returns a :class:`Score`) or a list of texts (returns a list, scored as
    one batch). ``per_char`` adds each predicted token's log-probability. ``dynamic`` (True, or
    settings: :func:`charlm.scoring.dynamic.settings_from`) adapts the model to each text as it
    reads it, each text from the trained weights; ``windows=N`` adds nanoGPT's figure over
    windows of N targets of each text (see the module docstring)."""
    texts = [text] if isinstance(text, str) else list(text)
    for t in texts:
        if not isinstance(t, str):
            raise UsageError(f"can only score text, not {type(t).__name__}")
        if not t:
            raise UsageError("cannot score an empty text: there is no character to predict")
        require_unicode(t)
    settings = settings_from(dynamic)
    check_figures(model, settings, windows, num_windows, seed)
    if settings is not None and per_char:
        raise UsageError("per-character figures are not given with dynamic evaluation")
    if model.vocab.kind == "words":         # per character, <UNK>s spelt out (scoring/words.py)
        results = words.score(model, texts, per_char, settings)
        return results[0] if isinstance(text, str) else results
    if settings is not None:
        results = [_score_dynamic(model, t, settings) for t in texts]
    else:
        results = score_texts(model, texts, per_char)
    if windows is not None:
        engine = Engine(model.network)
        for r in results:
            r.windowed = windowed_loss(engine, model.vocab.encode(r.text), windows, num_windows,
                                       seed)
    return results[0] if isinstance(text, str) else results


def _score_dynamic(model, text, settings):
    from .dynamic import Adapter, adapt_sequence
    lines = model.config.mode == "lines"
    ids = model.vocab.encode(text)
    ids = np.concatenate([[EOS_ID], ids] + ([[EOS_ID]] if lines else [])).astype(np.int32)
    with Adapter(model.network, settings) as adapter:
        log_prob, tokens, _ = adapt_sequence(adapter, ids)
        return Score(text, log_prob, tokens, model.vocab.unknown(text),
                     dynamic=dict(settings.to_json(), segments=adapter.steps))


def score_texts(model, texts, per_char, label_row=0):
    """The :class:`Score` of each text, read from the zero state in one batched no-grad pass;
    with ``label_row`` (a label's token id, :func:`charlm.text.labels.label_row`), the label read
    at every step. A word model's are :class:`charlm.scoring.words.WordScore`."""
    if model.vocab.kind == "words":         # per character, <UNK>s spelt out (scoring/words.py)
        return words.score(model, texts, per_char, label_row=label_row)
    lines = model.config.mode == "lines"
    results = [None] * len(texts)
    ids = [model.vocab.encode(text) for text in texts]
    rows = np.full(len(texts), label_row) if label_row else None
    for chosen, logp in passes.example_log_probs(Engine(model.network), ids, lines, rows):
        for col, i in enumerate(chosen):
            n = len(ids[i]) + lines
            terms = logp[:n, col]
            chars = list(texts[i]) + [EOS] * lines
            results[i] = Score(texts[i], float(terms.sum()), n, model.vocab.unknown(texts[i]),
                               list(zip(chars, terms.tolist())) if per_char else None)
    return results


def check_figures(model, settings, windows, num_windows, seed, exact=False):
    """Refuse, before any work, figures that cannot be asked for together: dynamic evaluation
    (``settings``) beside nanoGPT's windows or an ``exact`` pass, which are other figures; and
    windows that mean nothing for this model (:func:`check_windows`)."""
    if settings is not None and (windows is not None or exact):
        raise UsageError(f"--dynamic and {'--windows' if windows is not None else '--exact'} "
                         "give different figures: ask for one at a time")
    if windows is not None:
        check_windows(model, windows, num_windows, seed)


# ---- files ---------------------------------------------------------------------------------------

def score_file(model, path, encoding="utf-8", progress=None, exact=False, dynamic=None,
               windows=None, num_windows=DEFAULT_WINDOWS, seed=0):
    """Score the whole file at path (see the module docstring for how). ``progress(done, total)``
    is called with bytes read after each batch. ``exact`` (stream mode) scores it sequentially,
    exactly as the definition says, at batch 1. ``dynamic`` (True, or settings:
    :func:`charlm.scoring.dynamic.settings_from`) adapts the model to the file as it reads it;
    ``windows=N`` adds nanoGPT's figure over ``num_windows`` windows of N targets, seeded by
    ``seed``, to the result (the file's token ids are then held in memory)."""
    settings = settings_from(dynamic)
    check_figures(model, settings, windows, num_windows, seed, exact)
    if model.vocab.kind == "words":         # per character, <UNK>s spelt out (scoring/words.py)
        return words.score_file(model, path, encoding, progress, exact, settings)
    reader = TextFile(path, encoding, READ_BYTES)
    if settings is not None:
        result = _score_file_dynamic(model, reader, settings, progress)
        if result.num_tokens == 0:
            raise CorpusError(f"{path} is empty: there is nothing to score")
        result.file = str(path)
        return result
    if model.config.mode == "lines":
        tally = passes.score_lines(model, reader, progress)
        burn_in = None
    else:
        burn_in = 0 if exact else passes.BURN_IN
        segment, columns = (passes.MAX_SEGMENT, 1) if exact else passes.stream_layout(reader.size)
        tally = passes.score_stream(model, reader, progress, columns, segment, burn_in)
    if tally.tokens == 0:
        raise CorpusError(f"{path} is empty: there is nothing to score")
    if progress is not None:
        progress(reader.size, reader.size)
    result = Score(None, tally.log_prob, tally.tokens, list(tally.unknown), file=str(path),
                   burn_in=burn_in)
    if windows is not None:
        ids = np.concatenate([model.vocab.encode(text) for text in reader.chunks()] or
                             [np.zeros(0, np.int32)])
        result.windowed = windowed_loss(Engine(model.network), ids, windows, num_windows, seed)
    return result


def _score_file_dynamic(model, reader, settings, progress):
    """The file read in order while the model adapts (:mod:`charlm.scoring.dynamic`)."""
    from .dynamic import Adapter, StreamReader, adapt_lines
    tally = Tally(model.vocab)
    with Adapter(model.network, settings) as adapter:
        if model.config.mode == "lines":
            def lines():
                for line in passes.file_lines(reader, progress):
                    yield tally.encode(line)
            tally.log_prob, tally.tokens = adapt_lines(
                adapter, lines(), lambda batch: pad_examples(batch, lines=True))
        else:
            stream = StreamReader(adapter)
            for text in reader.chunks():
                stream.feed(tally.encode(text))
                if progress is not None:
                    progress(reader.bytes_read, reader.size)
            stream.feed(np.zeros(0, np.int32), final=True)
            tally.log_prob, tally.tokens = stream.log_prob, stream.tokens
        steps = adapter.steps
    if progress is not None:
        progress(reader.size, reader.size)
    return Score(None, tally.log_prob, tally.tokens, list(tally.unknown),
                 burn_in=0 if model.config.mode == "stream" else None,
                 dynamic=dict(settings.to_json(), segments=steps))

