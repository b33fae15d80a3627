"""The batched no-grad passes that scoring and validation share: texts as columns of the engine
(:class:`charlm.network.engine.Engine`), their log-probabilities summed into a :class:`Tally`,
and :class:`Score`, the record of one text's or one file's figures.

:mod:`charlm.scoring.scorer` says what they compute and why (the definition, lines and stream
mode, segments and their burn-in); :mod:`charlm.scoring.words` scores a word model with them, and
training reports its validation figures with :func:`lines_log_prob` and :func:`stream_log_prob`.

- lines: every line is an example of its own, ``<EOS>`` before and after; lines are sorted by
  length and scored in batches of ``COLUMNS``, padded with target -1 (:func:`pad_examples`,
  :func:`example_log_probs`: the one batched pass of texts, lines and labelled examples).
- stream: the ids ``<EOS> c_1 c_2 ..`` cut into segments of S tokens, side by side as columns;
  each column but the first reads the W tokens before its segment to warm its state and does not
  count them (:func:`score_rest`). With W = 0 and one column the state is carried from segment to
  segment: the exact sequential pass.

The sizes below are read when a pass runs, so that a test can make them small.
"""
import math
from dataclasses import dataclass

import numpy as np

from ..network.engine import BURN_IN, Engine
from ..text.labels import labelled_ids
from ..text.vocab import EOS_ID, UNK_ID

COLUMNS = 512          # sequences scored side by side, shared among the cores
MIN_SEGMENT = 1024     # stream-mode file: characters counted per column, at least ...
MAX_SEGMENT = 8192     # ... and at most (bounds the memory: COLUMNS * MAX_SEGMENT token ids)
LINE_BUFFER = 1 << 20  # lines-mode file: characters of lines sorted and batched together
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
    windowed: object = None          # nanoGPT's protocol: a charlm.scoring.scorer.Windowed

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


class Tally:
    """Running totals of a file: log-probability, tokens, unknown characters."""

    def __init__(self, vocab):
        self.vocab = vocab
        self.log_prob, self.tokens, self.unknown = 0.0, 0, {}

    def encode(self, text):
        ids = self.vocab.encode(text)
        for i in np.flatnonzero(ids == UNK_ID):
            self.unknown.setdefault(text[i], None)
        return ids


def pad_examples(ids_list, lines):
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


def example_log_probs(engine, examples, lines, label_rows=None, columns=COLUMNS):
    """Score examples (token id arrays), each from the zero state as :func:`pad_examples` lays it
    out, in batches of at most ``columns`` of similar length; with ``label_rows`` (a label token
    id per example, 0 for none) each reads its label at every step. Yields (the examples'
    indices, their (T, B) log p(y | x) columns in that order). A stable sort: examples of equal
    length keep their order, so equal-length runs stay together."""
    order = sorted(range(len(examples)), key=lambda i: len(examples[i]))
    for start in range(0, len(order), columns):
        chosen = order[start:start + columns]
        x, y = pad_examples([examples[i] for i in chosen], lines)
        if label_rows is not None:
            x = labelled_ids(x, np.asarray(label_rows)[chosen], engine.network.vocab_size)
        yield chosen, engine.log_probs(x, y, engine.zero_state(len(chosen)))


# ---- lines ---------------------------------------------------------------------------------------

def lines_log_prob(engine, lines_ids, label_rows=None):
    """(log-probability in nats, predicted tokens) of lines given as token ids, each an example of
    its own (``<EOS>`` before and after); with ``label_rows``, each read with its label. Training
    reports this for its validation lines."""
    log_prob = sum(float(logp.sum())
                   for _, logp in example_log_probs(engine, lines_ids, True, label_rows))
    return log_prob, sum(len(ids) + 1 for ids in lines_ids)


def file_lines(reader, progress=None):
    """The non-blank lines of a file (reader: a :class:`charlm.text.textfile.TextFile`), in order:
    lines mode's examples. ``progress(done, total)`` is called with the bytes read after each
    chunk."""
    partial = ""
    for text in reader.chunks():
        parts = (partial + text).split("\n")
        partial = parts.pop()
        yield from (line for line in parts if line.strip())
        if progress is not None:
            progress(reader.bytes_read, reader.size)
    if partial.strip():
        yield partial


def score_lines(model, reader, progress):
    """The :class:`Tally` of a lines-mode file: every non-blank line is one example; lines are
    buffered, sorted by length and scored in batches of COLUMNS. ``progress(done, total)`` is
    called with the bytes read."""
    tally = Tally(model.vocab)
    engine = Engine(model.network)
    lines, chars = [], 0
    for line in file_lines(reader, progress):
        lines.append(line)
        chars += len(line)
        if chars >= LINE_BUFFER:
            _score_line_buffer(engine, lines, tally)
            lines, chars = [], 0
    if lines:
        _score_line_buffer(engine, lines, tally)
    return tally


def _score_line_buffer(engine, lines, tally):
    log_prob, tokens = lines_log_prob(engine, [tally.encode(line) for line in lines])
    tally.log_prob += log_prob
    tally.tokens += tokens


# ---- streams -------------------------------------------------------------------------------------

def stream_layout(size_bytes):
    """(segment length S, columns per batch B) for a file of size_bytes, which bounds its number of
    characters: the longest segments that still fill COLUMNS columns, and batches of equal width
    (a narrow last batch would run its full length at a poor matrix-product speed)."""
    segment = min(MAX_SEGMENT, max(MIN_SEGMENT, -(-size_bytes // COLUMNS)))
    columns = max(1, -(-size_bytes // segment))
    batches = -(-columns // COLUMNS)
    return segment, -(-columns // batches)


def score_stream(model, reader, progress, B, S, W):
    """The :class:`Tally` of a stream-mode file (reader: a
    :class:`charlm.text.textfile.TextFile`). Column k reads the inputs ids'[kS .. kS + W + S) of
    ids' = <EOS> c_1 c_2 .., predicting the next token at each step (S: segment, W: burn-in), and
    counts its last S predictions (all of them for column 0, which starts at the beginning exactly
    as the definition does). The counted spans tile the file. Columns are scored in batches of B;
    ``pending`` holds ids' from the first column of the next batch on. With W = 0 and B = 1 the
    state is carried from segment to segment instead, which is the exact sequential computation."""
    tally = Tally(model.vocab)
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
    score_rest(engine, np.concatenate(parts), first, B, S, W, tally, state)
    return tally


def score_rest(engine, ids, first, B, S, W, tally, state):
    """Score the columns still needed to count every target of ids (ids' from column ``first``
    on) from offset W on (offset 0 for column 0), B columns at a time, into tally. ``state``: the
    state carried from segment to segment (W = 0, B = 1: the exact pass), or None."""
    targets = len(ids) - 1
    left = -(-(targets - W) // S) if targets > W else int(first == 0 and targets > 0)
    for start in range(0, left, B):
        _stream_batch(engine, ids[start * S:], first + start, min(B, left - start), S, W,
                      tally, state)


def stream_log_prob(engine, ids):
    """(log-probability in nats, predicted tokens) of a stream-mode text given as token ids,
    computed as :func:`charlm.scoring.scorer.score_file` computes it for a file (segments laid out
    by the number of characters rather than bytes: the two agree within the burn-in error).
    Training reports this for its validation text."""
    tally = Tally(vocab=None)
    ids = np.concatenate([[EOS_ID], ids]).astype(np.int32)
    segment, columns = stream_layout(len(ids))
    score_rest(engine, ids, 0, columns, segment, BURN_IN, tally, None)
    return tally.log_prob, tally.tokens


def _stream_batch(engine, ids, first, B, S, W, tally, state):
    """Score B columns of ids (ids' from column ``first`` on, as in :func:`score_stream`)."""
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
