"""Corpora: reading a text file, choosing the mode, the validation split and the training batches.

Batches are time-major token ids ``x``, ``y`` of shape (T, B); a target of -1 is padding.

- stream mode (char-rnn's layout): the text, with ``<EOS>`` as its first input, is cut into B
  contiguous streams; batch k holds steps [kT, (k+1)T) of every stream, so the recurrent state
  carries from one batch to the next. Each stream starts an epoch from the zero state with
  ``<EOS>`` as its first input. Each epoch starts the streams at an offset in [0, T) drawn
  from the seed and the epoch, so truncation points move from epoch to epoch.
- lines mode: each line is one example, ``<EOS> c1 .. cn`` -> ``c1 .. cn <EOS>``; B lines per batch,
  padded; a line longer than T is cut into chunks of T steps with the state carried within it.

A corpus is read into memory (:class:`Corpus`) or prepared on disk (``charlm.text.prepared``); both
give the text as ``<EOS>`` and its token ids, and its lines as spans of those ids, which the
batches read.
"""
import zlib

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import CorpusError
from .textfile import read_text
from .vocab import EOS_ID, Vocab

BUNDLED = "names.txt"


def fingerprint(text):
    """What a checkpoint keeps to recognise a corpus (``RunState.corpus``): its length in
    characters and the CRC-32 of its UTF-8 bytes. A prepared corpus (``charlm.text.prepared``)
    records the same two figures when it is prepared. A lone surrogate (which no UTF-8 file
    holds, but a text built in Python may) is encoded as it stands rather than refused."""
    return {"chars": len(text), "crc32": zlib.crc32(text.encode("utf-8", "surrogatepass"))}


@dataclass
class Corpus:
    """A corpus in memory. ``charlm.text.prepared.PreparedCorpus`` has the same methods."""
    text: str
    name: str          # the path, or "bundled names" for the default corpus

    @property
    def chars(self):
        return len(self.text)

    def detect_mode(self):
        return detect_mode(self.text)

    def vocab(self, min_count=1, mode="stream"):
        return Vocab.from_text(self.text, min_count, mode)

    def fingerprint(self):
        """What a checkpoint keeps to recognise its corpus: :func:`fingerprint` of its text."""
        return fingerprint(self.text)

    def ids(self, vocab):
        """(chars + 1,) int32: <EOS>, then the token id of every character."""
        return np.concatenate([[EOS_ID], vocab.encode(self.text)]).astype(np.int32)

    def line_spans(self):
        """(n, 2) int64 rows (start, length) in :meth:`ids` of the lines that are not blank."""
        spans, start = [], 1
        for line in self.text.split("\n"):
            if line.strip():
                spans.append((start, len(line)))
            start += len(line) + 1
        return np.array(spans, np.int64).reshape(-1, 2)


def read_corpus(path=None, encoding="utf-8"):
    """The text of path (the bundled names when path is None), read as charlm reads every text
    file (:mod:`charlm.text.textfile`). Raises CorpusError with one clear line for anything that is not
    usable text."""
    if path is None:
        with resources.as_file(_bundled()) as bundled:
            return Corpus(read_text(bundled), "the bundled names (corpora/names.txt)")
    text = read_text(path, encoding)
    if not text.strip():
        raise CorpusError(f"{path} is empty: there is nothing to learn from")
    return Corpus(text, str(path))


def _bundled():
    """The default corpus: installed as the package ``charlm.corpora``; in a source checkout that
    has not been installed it is the ``corpora/`` folder next to the package."""
    try:
        return resources.files("charlm.corpora").joinpath(BUNDLED)
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "corpora" / BUNDLED


def detect_mode(text):
    """'lines' for a list of short independent lines (names, words), 'stream' for running text
    (prose or code: blank lines, or long lines). Returns the mode and the reason, for the user."""
    lines = text.rstrip("\n").split("\n")
    return mode_for_lines(len(lines), any(not line.strip() for line in lines),
                          sum(map(len, lines)))


def mode_for_lines(count, any_blank, chars):
    """:func:`detect_mode` from the lines of the text with its trailing newlines dropped: their
    number, whether any is blank (white space only) and their characters in all."""
    if count < 2:
        return "stream", "the text is a single line"
    if any_blank:
        return "stream", "the text has blank lines (running text)"
    mean = chars / count
    if mean > 60:
        return "stream", f"its lines are long ({mean:.0f} characters on average)"
    return "lines", f"{count:,} short lines without blank lines (one example per line)"


def split_line_indices(n, val_frac, seed):
    """(train, val) ascending indices of n lines: val is a seeded random choice of val_frac of
    them (at least one and not all, where there are two or more)."""
    n_val = int(round(n * val_frac))
    if val_frac > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    order = np.random.default_rng([seed, 0x5EED]).permutation(n)
    held = np.zeros(n, bool)
    held[order[:n_val]] = True
    return np.flatnonzero(~held), np.flatnonzero(held)


def split_stream_ids(full, val_frac):
    """(train, val) views of full = <EOS> and the text's token ids (an array, or a prepared
    corpus's ``TokenIds``), nothing copied: val is the last val_frac of the text, cut where nanoGPT
    cuts (1,003,854 / 111,540 characters of tiny Shakespeare). Train starts with <EOS>, its first
    input; val is the held-out text alone (validation scores it as a text of its own)."""
    n_train = int((len(full) - 1) * (1.0 - val_frac))
    return full[:n_train + 1], full[n_train + 1:]


def lines_within(spans, max_chars):
    """The first rows of spans (start, length) whose lines, each with its <EOS>, add up to at most
    max_chars characters (at least one row); all of them for max_chars None."""
    if max_chars is None:
        return spans
    total = np.cumsum(spans[:, 1] + 1)
    return spans[:max(1, int(np.searchsorted(total, max_chars, side="right")))]


class Lines:
    """Lines as a sequence of int32 token id arrays: rows (start, length) of ``spans`` into ids."""

    def __init__(self, ids, spans):
        self.ids, self.spans = ids, spans

    def __len__(self):
        return len(self.spans)

    def __getitem__(self, i):
        start, length = self.spans[i]
        return np.asarray(self.ids[start:start + length], np.int32)

    def __iter__(self):
        return (self[i] for i in range(len(self)))


class StreamBatches:
    """Stream-mode batches of one epoch, addressed by index so that a run can resume anywhere.

    Each of the B streams carries its recurrent state from batch to batch; ``cold_starts`` is the
    share of them that restart from the zero state at each batch after the first (drawn from
    seed, epoch and index), so that the model also learns to read from a cold start, as it must
    when it scores a short text or nanoGPT's windows."""

    def __init__(self, ids, batch_size, seq_len, seed, cold_starts=0.0):
        self.ids, self.B, self.T, self.seed = ids, batch_size, seq_len, seed
        self.cold_starts = cold_starts
        self.stream_len = (len(ids) - 1) // batch_size

    def __len__(self):
        return max(1, (self.stream_len - self.T) // self.T) if self.stream_len > self.T else 1

    def offset(self, epoch):
        if self.stream_len <= self.T:
            return 0
        return int(np.random.default_rng([self.seed, epoch, 0x0FF5]).integers(self.T))

    def batch(self, epoch, index):
        start = self.offset(epoch) + index * self.T
        T = min(self.T, self.stream_len - start)
        starts = np.arange(self.B) * self.stream_len + start
        cols = starts[None, :] + np.arange(T)[:, None]          # (T, B)
        x, y = self.ids[cols], self.ids[cols + 1]
        if index == 0:
            # every stream starts from the zero state, as a sample does: with <EOS> as its first
            # input, so that sampling from <EOS> starts like text instead of mid-word
            x[0] = EOS_ID
        return x, y

    def restarted(self, state, epoch, index):
        """The state carried into batch ``index``, with the streams that restart there zeroed
        (a copy, or state itself when none restarts). State is (layers, 2, B, H)-like: streams on
        axis 2."""
        if not self.cold_starts:
            return state
        draw = np.random.default_rng([self.seed, epoch, index, 0xC01D]).random(self.B)
        cold = draw < self.cold_starts
        if not cold.any():
            return state
        state = state.copy()
        state[:, :, cold] = 0.0
        return state


class LineBatches:
    """Lines-mode batches of one epoch: the lines shuffled by (seed, epoch), B per batch, each
    batch cut into chunks of at most T steps. ``batch(epoch, index)`` returns the chunks."""

    def __init__(self, lines_ids, batch_size, seq_len, seed):
        self.lines, self.B, self.T, self.seed = lines_ids, batch_size, seq_len, seed
        self._order = (None, None)       # (epoch, its order of the lines)

    def __len__(self):
        return -(-len(self.lines) // self.B)

    def batch(self, epoch, index):
        if self._order[0] != epoch:
            self._order = (epoch, np.random.default_rng([self.seed, epoch, 0x11E5]).permutation(
                len(self.lines)))
        chosen = [self.lines[i] for i in self._order[1][index * self.B:(index + 1) * self.B]]
        return pad_lines(chosen, self.T)


def pad_lines(lines_ids, seq_len=None):
    """Chunks [(x, y), ...] of at most seq_len steps covering the padded examples
    <EOS> c1..cn -> c1..cn <EOS>, one column per line."""
    steps = max(len(ids) for ids in lines_ids) + 1
    B = len(lines_ids)
    x = np.zeros((steps, B), np.int32)
    y = np.full((steps, B), -1, np.int32)
    x[0] = EOS_ID
    for col, ids in enumerate(lines_ids):
        n = len(ids)
        x[1:n + 1, col] = ids
        y[:n, col] = ids
        y[n, col] = EOS_ID
    T = seq_len or steps
    return [(x[t:t + T], y[t:t + T]) for t in range(0, steps, T)]


def fit_batch_shape(mode, n_train, batch_size, seq_len):
    """Shrink the batch (and in stream mode the sequence) for a corpus too short for them.
    Returns (batch_size, seq_len, notice or None)."""
    if mode == "lines":
        if n_train < batch_size:
            return n_train, seq_len, (f"only {n_train} training lines: batch size {batch_size} -> "
                                      f"{n_train}")
        return batch_size, seq_len, None
    chars = n_train - 1
    if chars < 2:
        raise CorpusError("the corpus is too short to train on (it needs at least 2 characters "
                          "for training, after the validation split)")
    if chars >= batch_size * (seq_len + 1):
        return batch_size, seq_len, None
    B = max(1, min(batch_size, chars // (seq_len + 1)))
    T = min(seq_len, chars // B - 1) if chars // B > 1 else 1
    return B, T, (f"the corpus has only {chars:,} training characters: batch {batch_size} x "
                  f"sequence {seq_len} -> {B} x {T}")
