"""Scoring: the log-probability of a text under a model, and the same figures for a whole file.

The definition (SPEC.md, "Log-probability of a text"): from the zero state, with ``<EOS>`` as the
first input,

    log P(c_1 .. c_n) = sum_t log p(c_t | <EOS>, c_1 .. c_{t-1})  [+ log p(<EOS> | <EOS>, c_1 .. c_n)]

the bracketed term in lines mode only. Characters outside the vocabulary count as ``<UNK>``.
Bits per character divide by the number of predicted tokens: n in stream mode, n + 1 in lines mode,
where the closing ``<EOS>`` counts as one character. It is a prediction the model makes like any
other, and training's loss averages over the same tokens, so the bits/char of ``score --file`` on
held-out text compare with the validation bits/char that training reports.

Texts are scored as one batch, one column each, padded with target -1. Files are read
incrementally and scored in batches of columns, so memory does not grow with the file:

- lines mode: every non-blank line is one independent example (as in training); lines are
  buffered, sorted by length and batched so that little padding is needed.
- stream mode: the exact value is one sequential pass (``exact=True``, batch 1, slow). The default
  cuts the file into segments of S characters, scored side by side (S grows with the file from
  ``MIN_SEGMENT`` to ``MAX_SEGMENT``, so the share of burn-in shrinks). Each segment but the
  first starts from the zero state ``BURN_IN`` characters early: the model reads those characters
  to warm its state, and their log-probabilities are not counted (the segment before counts them).
  The first segment starts exactly as the definition says. A character-level model forgets what it
  read a few hundred characters ago, so the result is close to the exact value, and the gap
  shrinks quickly as the burn-in grows: with ``BURN_IN`` = 128
  (``charlm.network.engine``, shared with the bidirectional model's validation) it is about 1e-6
  bits/char for a 2x128 LSTM on tiny Shakespeare with segments of 1024 characters (the shortest
  used), for about 6% more work on a 1 MB file, less on larger ones.
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
import math
from dataclasses import dataclass

import numpy as np

from ..errors import CorpusError, UsageError
from ..network.engine import BURN_IN, Engine
from ..text.textfile import TextFile
from ..text.vocab import EOS, EOS_ID, UNK_ID, require_unicode
from .options import DEFAULT_WINDOWS, check_windows, settings_from

COLUMNS = 512          # sequences scored side by side, shared among the cores
MIN_SEGMENT = 1024     # stream-mode file: characters counted per column, at least ...
MAX_SEGMENT = 8192     # ... and at most (bounds the memory: COLUMNS * MAX_SEGMENT token ids)
LINE_BUFFER = 1 << 20  # lines-mode file: characters of lines sorted and batched together
READ_BYTES = 1 << 16   # file read size
LN2 = math.log(2.0)


@dataclass
class Score:
    """The figures of one text (or one file, then ``text`` is None and ``file`` its path)."""
    text: str | None
    log_prob: float                  # nats
    num_tokens: int                  # predicted tokens: characters, plus <EOS> in lines mode
    unknown: list                    # characters not in the vocabulary, scored as <UNK>
    per_char: list | None = None     # [(char, log_prob)], "<EOS>" last in lines mode
    file: str | None = None
    burn_in: int | None = None       # stream-mode file scored by segments: the burn-in length
    dynamic: dict | None = None      # dynamic evaluation: its settings and segments
    windowed: "Windowed | None" = None   # nanoGPT's protocol, when asked for

    @property
    def log2_prob(self):
        return self.log_prob / LN2

    @property
    def probability(self):
        """exp(log_prob); 0.0 when it underflows (long texts): use log_prob."""
        return math.exp(self.log_prob)

    @property
    def bits_per_char(self):
        return -self.log2_prob / self.num_tokens

    @property
    def perplexity(self):
        return math.exp(-self.log_prob / self.num_tokens)

    def to_json(self):
        data = {"file": self.file} if self.file is not None else {"text": self.text}
        data.update(log_prob=self.log_prob, log2_prob=self.log2_prob, probability=self.probability,
                    bits_per_char=self.bits_per_char, perplexity=self.perplexity,
                    num_tokens=self.num_tokens, unknown=self.unknown)
        if self.file is not None:
            data["burn_in"] = self.burn_in
        if self.dynamic is not None:
            data["dynamic"] = self.dynamic
        if self.windowed is not None:
            data["windowed_loss"] = self.windowed.loss
            data["windows"] = self.windowed.to_json()
        if self.per_char is not None:
            data["per_char"] = [{"char": c, "log_prob": lp} for c, lp in self.per_char]
        return data


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
    for lo in range(0, count, COLUMNS):
        s = starts[lo:lo + COLUMNS][None, :]
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
    if model.vocab.kind == "words":         # per character, <UNK>s spelt out (scoring/words.py)
        from . import words
        words.refuse_figures(settings, windows)
        results = words.score(model, texts, per_char)
        return results[0] if isinstance(text, str) else results
    if windows is not None:
        check_windows(model, windows, num_windows, seed)
    if settings is not None:
        if per_char:
            raise UsageError("per-character figures are not given with dynamic evaluation")
        results = [_score_dynamic(model, t, settings) for t in texts]
    else:
        results = _score_static(model, texts, per_char)
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


def _score_static(model, texts, per_char):
    lines = model.config.mode == "lines"
    engine = Engine(model.network)
    results = [None] * len(texts)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))   # similar lengths together
    for start in range(0, len(order), COLUMNS):
        chosen = order[start:start + COLUMNS]
        ids = [model.vocab.encode(texts[i]) for i in chosen]
        x, y = _pad_examples(ids, lines)
        logp = engine.log_probs(x, y, engine.zero_state(len(chosen)))
        for col, i in enumerate(chosen):
            n = len(ids[col]) + lines
            terms = logp[:n, col]
            chars = list(texts[i]) + [EOS] * lines
            results[i] = Score(texts[i], float(terms.sum()), n, model.vocab.unknown(texts[i]),
                               list(zip(chars, terms.tolist())) if per_char else None)
    return results


def _pad_examples(ids_list, lines):
    """Inputs <EOS> c_1 .. c_n, targets c_1 .. c_n (<EOS> in lines mode), one column each,
    padded with input <EOS> and target -1: (T, B) int32 x, y."""
    T = max(len(ids) for ids in ids_list) + lines
    x = np.zeros((T, len(ids_list)), np.int32)
    y = np.full((T, len(ids_list)), -1, np.int32)
    for col, ids in enumerate(ids_list):
        n = len(ids)
        x[1:n + lines, col] = ids[:n + lines - 1]
        y[:n, col] = ids
        if lines:
            y[n, col] = EOS_ID
    return x, y


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
    if model.vocab.kind == "words":         # per character, <UNK>s spelt out (scoring/words.py)
        from . import words
        words.refuse_figures(settings, windows)
        return words.score_file(model, path, encoding, progress, exact)
    if windows is not None:
        if settings is not None:
            raise UsageError("windows and dynamic evaluation are two different figures: ask for "
                             "one at a time")
        check_windows(model, windows, num_windows, seed)
    reader = TextFile(path, encoding, READ_BYTES)
    if settings is not None:
        result = _score_file_dynamic(model, reader, settings, progress)
        if result.num_tokens == 0:
            raise CorpusError(f"{path} is empty: there is nothing to score")
        result.file = str(path)
        return result
    if model.config.mode == "lines":
        tally = _score_lines(model, reader, progress)
        burn_in = None
    else:
        burn_in = 0 if exact else BURN_IN
        segment, columns = (MAX_SEGMENT, 1) if exact else _stream_layout(reader.size)
        tally = _score_stream(model, reader, progress, columns, segment, burn_in)
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
    tally = _Tally(model.vocab)
    with Adapter(model.network, settings) as adapter:
        if model.config.mode == "lines":
            def lines():
                for line in _file_lines(reader, progress):
                    yield tally.encode(line)
            tally.log_prob, tally.tokens = adapt_lines(
                adapter, lines(), lambda batch: _pad_examples(batch, lines=True))
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


def _file_lines(reader, progress):
    """The non-blank lines of a file, in order (lines mode's examples)."""
    partial = ""
    for text in reader.chunks():
        parts = (partial + text).split("\n")
        partial = parts.pop()
        yield from (line for line in parts if line.strip())
        if progress is not None:
            progress(reader.bytes_read, reader.size)
    if partial.strip():
        yield partial


class _Tally:
    """Running totals of a file: log-probability, tokens, unknown characters."""

    def __init__(self, vocab):
        self.vocab = vocab
        self.log_prob, self.tokens, self.unknown = 0.0, 0, {}

    def encode(self, text):
        ids = self.vocab.encode(text)
        for i in np.flatnonzero(ids == UNK_ID):
            self.unknown.setdefault(text[i], None)
        return ids


def _stream_layout(size_bytes):
    """(segment length S, columns per batch B) for a file of size_bytes, which bounds its number of
    characters: the longest segments that still fill COLUMNS columns, and batches of equal width
    (a narrow last batch would run its full length at a poor matrix-product speed)."""
    segment = min(MAX_SEGMENT, max(MIN_SEGMENT, -(-size_bytes // COLUMNS)))
    columns = max(1, -(-size_bytes // segment))
    batches = -(-columns // COLUMNS)
    return segment, -(-columns // batches)


def _score_stream(model, reader, progress, B, S, W):
    """Column k reads the inputs ids'[kS .. kS + W + S) of ids' = <EOS> c_1 c_2 .., predicting the
    next token at each step (S: segment, W: burn-in), and counts its last S predictions (all of
    them for column 0, which starts at the beginning exactly as the definition does). The counted
    spans tile the file. Columns are scored in batches of B; ``pending`` holds ids' from the first
    column of the next batch on. With W = 0 and B = 1 the state is carried from segment to
    segment instead, which is the exact sequential computation."""
    tally = _Tally(model.vocab)
    engine = Engine(model.network)
    exact = W == 0
    state = engine.zero_state(1) if exact else None
    pending = np.array([EOS_ID], np.int32)
    first = 0    # index of pending's first column
    parts, size = [pending], 1
    for text in reader.chunks():
        parts.append(tally.encode(text))
        size += len(parts[-1])
        if size < B * S + W + 1:
            continue
        pending = np.concatenate(parts)
        while len(pending) >= B * S + W + 1:
            _stream_batch(engine, pending, first, B, S, W, tally, state)
            pending = pending[B * S:]
            first += B
            if progress is not None:
                progress(reader.bytes_read, reader.size)
        parts, size = [pending], len(pending)
    _score_rest(engine, np.concatenate(parts), first, B, S, W, tally, state)
    return tally


def _score_rest(engine, ids, first, B, S, W, tally, state):
    """Score the columns still needed to count every target of ids (ids' from column ``first``
    on) from offset W on (offset 0 for column 0), B columns at a time."""
    targets = len(ids) - 1
    left = -(-(targets - W) // S) if targets > W else int(first == 0 and targets > 0)
    for start in range(0, left, B):
        _stream_batch(engine, ids[start * S:], first + start, min(B, left - start), S, W,
                      tally, state)


def stream_log_prob(engine, ids):
    """(log-probability in nats, predicted tokens) of a stream-mode text given as token ids,
    computed as :func:`score_file` computes it for a file (segments laid out by the number of
    characters rather than bytes: the two agree within the burn-in error). Training reports this
    for its validation text."""
    tally = _Tally(vocab=None)
    ids = np.concatenate([[EOS_ID], ids]).astype(np.int32)
    segment, columns = _stream_layout(len(ids))
    _score_rest(engine, ids, 0, columns, segment, BURN_IN, tally, None)
    return tally.log_prob, tally.tokens


def _stream_batch(engine, ids, first, B, S, W, tally, state):
    """Score B columns of ids (ids' from column ``first`` on, as in :func:`_score_stream`)."""
    T = min(W + S, len(ids) - 1)
    pos = np.arange(T)[:, None] + S * np.arange(B)[None, :]       # (T, B) offsets into ids
    x = np.where(pos < len(ids), ids[np.minimum(pos, len(ids) - 1)], EOS_ID).astype(np.int32)
    y = np.where(pos + 1 < len(ids), ids[np.minimum(pos + 1, len(ids) - 1)], -1).astype(np.int32)
    y[:W, 1 if first == 0 else 0:] = -1         # burn-in: read, not counted
    if state is None:
        state = engine.zero_state(B)
    logp = engine.log_probs(x, y, state)
    tally.log_prob += float(logp.sum())
    tally.tokens += int((y >= 0).sum())


def _score_lines(model, reader, progress):
    """Every non-blank line is one example; lines are buffered, sorted by length and scored in
    batches of COLUMNS."""
    tally = _Tally(model.vocab)
    engine = Engine(model.network)
    lines, chars, partial = [], 0, ""
    for text in reader.chunks():
        parts = (partial + text).split("\n")
        partial = parts.pop()
        for line in parts:
            if line.strip():
                lines.append(line)
                chars += len(line)
        if chars >= LINE_BUFFER:
            _score_line_buffer(engine, lines, tally)
            lines, chars = [], 0
            if progress is not None:
                progress(reader.bytes_read, reader.size)
    if partial.strip():
        lines.append(partial)
    if lines:
        _score_line_buffer(engine, lines, tally)
    return tally


def _score_line_buffer(engine, lines, tally):
    log_prob, tokens = lines_log_prob(engine, [tally.encode(line) for line in lines])
    tally.log_prob += log_prob
    tally.tokens += tokens


def lines_log_prob(engine, lines_ids):
    """(log-probability in nats, predicted tokens) of lines given as token ids, each an example of
    its own (``<EOS>`` before and after), scored in batches of COLUMNS lines of similar length.
    Training reports this for its validation lines."""
    ordered = sorted(lines_ids, key=len)
    log_prob = 0.0
    for start in range(0, len(ordered), COLUMNS):
        x, y = _pad_examples(ordered[start:start + COLUMNS], lines=True)
        log_prob += float(engine.log_probs(x, y, engine.zero_state(x.shape[1])).sum())
    return log_prob, sum(len(ids) + 1 for ids in ordered)
