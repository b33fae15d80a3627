"""A corpus read as word tokens (``--tokens words``): the token numbers the trainer reads, and the
word vocabulary counted from its training part (how text is cut and what the vocabulary holds:
:mod:`charlm.text.words`)."""
from dataclasses import replace

import numpy as np

from ..errors import CorpusError, UsageError
from . import corpus as data
from .corpus import Corpus
from .labels import tokens as label_tokens
from .prepared import TokenIds, index_lines
from .vocab import EOS, EOS_ID, UNK, UNK_ID
from .words import DEFAULT_MAX_WORDS, Spelling, TokenNumbers, WordVocab, is_word, split

COUNT_CHUNK = 1 << 22       # token numbers counted at a time


class WordCorpus:
    """A corpus read as word tokens: ``<EOS>``, then the number of each token in order of first
    appearance (:class:`TokenNumbers`; ``types[k - 2]`` is token k), cut in memory from a
    ``corpus.Corpus`` or read from a ``prepared.PreparedCorpus``'s word copy. The interface the
    trainer uses (``chars``, ``detect_mode``, ``fingerprint``, ``ids``, ``line_spans``, ``vocab``).
    The vocabulary and the figures in characters are counted from the numbers alone, a chunk at a
    time, so both kinds of corpus give the same ones and the numbers need not fit in memory. A
    labelled corpus (``labels.LabelledCorpus``, in memory) passes on its ``labels`` and
    ``line_labels``: one text a line, so its lines in tokens are its examples, in order."""

    def __init__(self, corpus, reporter=None):
        self.corpus, self.name, self.chars = corpus, corpus.name, corpus.chars
        self.labels = getattr(corpus, "labels", None)
        self.line_labels = getattr(corpus, "line_labels", None)
        if isinstance(corpus, Corpus):
            numbers = TokenNumbers()
            self.numbers = np.concatenate([np.int32([EOS_ID]), numbers.of(split(corpus.text))])
            self.types, self.mapped = numbers.types, None
        else:
            if reporter is not None and not corpus.has_words:
                reporter.notice(f"cutting {corpus.name} into words once, into its prepared copy "
                                f"({corpus.folder}): later runs reuse them")
            self.types, self.mapped = corpus.word_ids(reporter.preparing if reporter else None)
            self.numbers = self.mapped.array
        # the characters of the token numbered k (none for <EOS>, and 1 numbers no token)
        self.lengths = np.array([0, 0] + [len(t) for t in self.types], np.int64)
        self._lines, self._counted = None, {}

    def detect_mode(self):
        return self.corpus.detect_mode()

    def fingerprint(self):
        return self.corpus.fingerprint()

    def ids(self, vocab):
        """<EOS> and the id of every token in vocab: int32 in memory, ``prepared.TokenIds`` read
        from a prepared copy."""
        new_id = np.array([EOS_ID, UNK_ID] + [vocab.index.get(t, UNK_ID) for t in self.types],
                          np.int32)
        if self.mapped is None:
            return new_id[self.numbers]
        return TokenIds(self.mapped, new_id)

    def line_spans(self):
        """(n, 2) rows (start, length) in :meth:`ids` of the lines that are not blank, in tokens."""
        if self.mapped is not None:
            return self.corpus.word_line_spans()
        if self._lines is None:
            newline = self.types.index("\n") + 2 if "\n" in self.types else -1
            out = np.empty((int(np.count_nonzero(self.numbers == newline)) + 1, 2), np.int64)
            self._lines = out[:index_lines(self.numbers, self.types, out)]
        return self._lines

    def counts(self, spans):
        """(types + 2,) int64: how often each number occurs in the rows (start, length) of spans
        (ascending and disjoint, positions in :meth:`ids`)."""
        spans = np.asarray(spans, np.int64).reshape(-1, 2)
        key = spans.tobytes()
        if key not in self._counted:
            self._counted[key] = _count_within(self.numbers, spans, len(self.types) + 2)
        return self._counted[key]

    def training_spans(self, config):
        """The training part as rows (start, length) of :meth:`ids`, as ``trainer.build_dataset``
        splits it."""
        if config.mode == "lines":
            spans = self.line_spans()
            train, _ = data.split_line_indices(len(spans), config.val_frac, config.seed)
            return spans[train]
        train, _ = data.split_stream_ids(self.numbers, config.val_frac)
        return np.array([[1, len(train) - 1]], np.int64)

    def vocab(self, config):
        """(:class:`WordVocab`, notice) from the training part's counts, and a labelled
        corpus's label tokens (the rules: :mod:`charlm.text.words`)."""
        numbers = self.counts(self.training_spans(config))
        seen = np.flatnonzero(numbers[2:]) + 2
        counts = {self.types[k - 2]: int(numbers[k]) for k in seen}
        if not any(is_word(t) for t in counts):
            raise CorpusError(f"{self.name} has no word in its training text (a word is a run of "
                              "letters or digits): there is nothing for --tokens words to learn")
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        if config.vocab_size is None:
            least = max(2, config.min_count)
            kept = [t for t, n in ranked if n >= least][:DEFAULT_MAX_WORDS]
            how = (f"the tokens seen at least {least} times, at most {DEFAULT_MAX_WORDS:,}; "
                   "--vocab-size to choose")
        else:
            kept = [t for t, n in ranked if n >= config.min_count][:config.vocab_size]
            how = f"--vocab-size {config.vocab_size}"
        if not kept and config.vocab_size is None and config.min_count <= 2:
            raise UsageError(f"no token of {self.name} is seen {least} times or more in its "
                             "training text, so the default vocabulary is empty: give "
                             "--vocab-size N to keep the N most frequent tokens")
        if not kept:
            raise UsageError(f"--min-count {config.min_count} leaves no token of {self.name} a "
                             "token of its own: nothing would be learnt; lower it")
        chosen = set(kept)
        unknown = {t: n for t, n in counts.items() if t not in chosen and t != "\n"}
        share = sum(unknown.values()) / max(1, int(numbers.sum()))
        notice = (f"vocabulary: {len(kept):,} word tokens of the {len(counts):,} distinct ones "
                  f"in the training text ({how}); the rest, {share:.1%} of its tokens, read as <UNK>")
        return WordVocab([EOS, UNK] + kept + label_tokens(self.labels or []),
                         Spelling.from_counts(counts, unknown)), notice


def _count_within(numbers, spans, size):
    """How often each number below size occurs within the rows (start, length) of spans
    (ascending, disjoint) of numbers, read COUNT_CHUNK numbers at a time."""
    counts = np.zeros(size, np.int64)
    starts, ends = spans[:, 0], spans[:, 0] + spans[:, 1]
    for lo in range(0, len(numbers), COUNT_CHUNK):
        hi = min(lo + COUNT_CHUNK, len(numbers))
        first, last = np.searchsorted(ends, lo, "right"), np.searchsorted(starts, hi)
        # +1 where a span starts, -1 where it ends: the running sum is 1 inside a span
        edges = np.zeros(hi - lo + 1, np.int64)
        np.add.at(edges, np.clip(starts[first:last] - lo, 0, hi - lo), 1)
        np.add.at(edges, np.clip(ends[first:last] - lo, 0, hi - lo), -1)
        inside = np.cumsum(edges[:-1]) > 0
        counts += np.bincount(np.asarray(numbers[lo:hi])[inside], minlength=size)
    return counts


def tokenized(config, corpus, notices=None, reporter=None):
    """The corpus as the trainer reads it for ``config.tokens``, and its vocabulary (resolving
    ``vocab_size`` for words). Returns (config, corpus, vocab). Cutting a prepared corpus into
    words for the first time says so through reporter (``notice``, ``preparing``)."""
    if config.tokens != "words":
        return config, corpus, corpus.vocab(config.min_count, config.mode)
    words = WordCorpus(corpus, reporter)
    vocab, notice = words.vocab(config)
    if notices is not None:
        notices.append(notice)
    return replace(config, vocab_size=len(vocab) - 2 - len(words.labels or [])), words, vocab


def reopened(corpus, vocab, reporter=None):
    """The corpus of a resumed run (or of another rank), read as its vocabulary's tokens."""
    return WordCorpus(corpus, reporter) if vocab.kind == "words" else corpus


def char_figures(config, corpus, dataset):
    """For a word model: set the dataset's validation characters and the nats its <UNK>s pay for
    their spelling (so validation reports bits per character), and its training text's characters
    per token (train's chars/s). The held-out tokens are found as ``build_dataset`` found them."""
    if not isinstance(corpus, WordCorpus):
        return dataset
    train = corpus.counts(corpus.training_spans(config))
    dataset.chars_per_token = int(train @ corpus.lengths) / max(1, int(train.sum()))
    if not dataset.val_tokens:
        return dataset
    if config.mode == "lines":
        spans = corpus.line_spans()
        _, val_rows = data.split_line_indices(len(spans), config.val_frac, config.seed)
        held = data.lines_within(spans[val_rows], config.val_max_chars or None)
        extra = len(held)                 # each line's <EOS>, counted as a character
    else:
        (start, n_train), = corpus.training_spans(config)
        held, extra = [[start + n_train, dataset.val_tokens]], 0
    val = corpus.counts(held)
    dataset.val_chars = int(val @ corpus.lengths) + extra
    vocab = dataset.vocab
    unknown = [k for k in np.flatnonzero(val[2:]) + 2 if corpus.types[k - 2] not in vocab.index]
    dataset.val_unk_nats = -sum(int(val[k]) * vocab.spelling.log_prob(corpus.types[k - 2])
                                for k in unknown)
    return dataset
