"""Word tokens (``--tokens words``): how a text is cut into words, the word vocabulary, and the
character model that spells an ``<UNK>``.

How a text is cut (:func:`split`), left to right, each token the longest match of the first rule
that matches:

1. a word: one or more Unicode letters or digits (``str.isalnum``; ``_`` is not one), possibly
   joined to more of them by single inner apostrophes (``'`` or ``’``) or hyphens (``-``):
   ``don't``, ``o’er``, ``well-known``, ``1990s``, ``Ελλάδα``. An apostrophe or hyphen at either
   end of a word is a punctuation mark of its own (``'tis`` is ``'`` then ``tis``);
2. a newline ``\\n``, always a token of its own (so lines can be told apart by token);
3. a run of other whitespace (spaces, tabs, ``\\r``, ...);
4. any other single character: a punctuation mark or symbol, or a combining mark (after a
   letter too: ``str.isalnum`` is false for it, so a decomposed ``é`` splits its word).

Every character of the text falls in exactly one token, so the text is exactly the concatenation
of its tokens. The text is taken as given (no Unicode normalisation, no case folding).

The vocabulary (:class:`WordVocab`) is ``<EOS>``, ``<UNK>``, then the tokens kept, most frequent
first (ties in code-point order), counted on the training part of the corpus alone: without
``--vocab-size``, the tokens seen at least twice (or ``--min-count`` times, if higher), at most
``DEFAULT_MAX_WORDS`` of them; with ``--vocab-size N``, the N most frequent tokens seen at least
``--min-count`` times. Every other token reads as ``<UNK>``. A labelled corpus's label tokens
follow (:mod:`charlm.text.labels`); its texts are counted, not its label names.

The spelling of an ``<UNK>`` (:class:`Spelling`): so that the probability of a text under a word
model is the probability of its characters, an ``<UNK>`` also pays for the token it stands for:

    P(w | <UNK>) = s (1 - s)^(n - 1) prod_i p(c_i),    w = c_1 .. c_n

a character unigram ``p`` of the training text (add-one counts over its characters, plus one count
for all other characters, shared evenly among the 0x110000 code points) and a length that stops
after each character with probability ``s`` = the out-of-vocabulary tokens of the training text
divided by their characters (of all its tokens when every one is in the vocabulary). The
checkpoint keeps it under ``words.chars`` (the characters, 1-d str), ``words.char_log_probs``
(float64, log p of each, then log p of any one other character) and ``words.stop_prob`` (s).
"""
import math
import re
from collections import Counter

import numpy as np

from ..errors import CorpusError, UsageError
from .labels import tokens as label_tokens
from .vocab import EOS, EOS_ID, UNK, UNK_ID, Vocab, is_label

TOKEN_KINDS = ("chars", "words")
DEFAULT_MAX_WORDS = 10_000
CODE_POINTS = 0x110000

_WORD = r"[^\W_]+(?:['’\-][^\W_]+)*"
TOKEN = re.compile(rf"{_WORD}|\n|[^\S\n]+|.", re.DOTALL)
WORD = re.compile(_WORD)
# TOKEN for the report page's JavaScript (flags "gsu"): Python's [^\W_] is what str.isalnum
# accepts, the letters and numbers of Unicode, which JavaScript names [\p{L}\p{N}]. They differ
# on U+001C..U+001F and U+0085 (whitespace to Python), U+FEFF (to JavaScript) and the letters of
# Unicode versions one of the two does not know yet (docs/words.md)
TOKEN_JS = r"[\p{L}\p{N}]+(?:['’\-][\p{L}\p{N}]+)*|\n|[^\S\n]+|."


def split(text):
    """The tokens of text (see the module docstring); ``"".join(split(text)) == text``."""
    return TOKEN.findall(text)


def split_chunks(chunks):
    """The tokens of a text given in pieces (an iterable of str), as a list per piece: together,
    ``split("".join(chunks))``. Each piece's last two tokens wait for the next piece: a token that
    ends two or more characters before the cut is decided by characters before it (a word goes on
    only through a letter, or a joiner followed by a letter), so only the last token, or a word
    before a joiner that ends the piece (``well-`` then ``known``), can change."""
    held = ""
    for chunk in chunks:
        tokens = split(held + chunk)
        held = "".join(tokens[-2:])
        yield tokens[:-2]
    yield split(held)


class TokenNumbers:
    """Numbers tokens in order of first appearance from 2 (0 and 1 are <EOS> and <UNK> in a
    vocabulary): ``types[k - 2]`` is the token numbered k."""

    def __init__(self):
        self.number = {}

    def __len__(self):
        return len(self.number)

    def of(self, tokens):
        """int32 numbers of tokens, numbering the new ones."""
        number = self.number
        return np.fromiter((number.setdefault(t, len(number) + 2) for t in tokens), np.int32,
                           len(tokens))

    @property
    def types(self):
        return list(self.number)


def is_word(token):
    return WORD.fullmatch(token) is not None


class Spelling:
    """The character model that spells an ``<UNK>`` (see the module docstring)."""

    def __init__(self, chars, char_log_probs, stop_prob):
        self.chars = list(chars)
        self.char_log_probs = np.asarray(char_log_probs, np.float64)
        if len(self.char_log_probs) != len(self.chars) + 1 or not 0.0 < stop_prob <= 1.0:
            raise ValueError("the <UNK> spelling model does not fit its characters")
        self.stop_prob = float(stop_prob)
        self._log = dict(zip(self.chars, self.char_log_probs[:-1].tolist()))
        self._other = float(self.char_log_probs[-1])

    @classmethod
    def from_counts(cls, tokens, unknown):
        """Counted from the training text's tokens ({token: occurrences}); ``unknown`` are those
        read as <UNK>, with theirs."""
        counts = Counter()
        for t, n in tokens.items():
            for c, k in Counter(t).items():
                counts[c] += n * k
        chars = sorted(counts)
        total = sum(counts.values()) + len(chars) + 1          # add-one, one count for the rest
        logs = [math.log((counts[c] + 1) / total) for c in chars]
        logs.append(math.log(1 / total) - math.log(CODE_POINTS - len(chars)))
        spelt = unknown if unknown else tokens
        stop = sum(spelt.values()) / max(1, sum(n * len(t) for t, n in spelt.items()))
        return cls(chars, logs, min(1.0, stop))

    def log_prob(self, token):
        """log P(token | <UNK>) in nats."""
        n = len(token)
        if n == 0:
            return 0.0
        lp = sum(self._log.get(c, self._other) for c in token)
        if self.stop_prob < 1.0:
            lp += (n - 1) * math.log1p(-self.stop_prob)
        return lp + math.log(self.stop_prob)

    def arrays(self):
        return {"words.chars": np.array(self.chars, dtype=str).reshape(-1),
                "words.char_log_probs": self.char_log_probs,
                "words.stop_prob": np.array(self.stop_prob, np.float64)}

    @classmethod
    def from_arrays(cls, arrays):
        try:
            chars, logs, stop = (arrays[k] for k in ("words.chars", "words.char_log_probs",
                                                      "words.stop_prob"))
        except KeyError as e:
            raise ValueError(f"a word model needs the key {e.args[0]}") from None
        if chars.ndim != 1 or chars.dtype.kind != "U" or logs.dtype.kind != "f" or stop.shape != ():
            raise ValueError("the <UNK> spelling model (words.*) has the wrong types")
        if any(len(c) != 1 for c in chars.tolist()) or not np.all(np.isfinite(logs)):
            raise ValueError("the <UNK> spelling model (words.*) is not valid")
        return cls(chars.tolist(), logs, float(stop))


class WordVocab(Vocab):
    """Token ids: 0 is ``<EOS>``, 1 is ``<UNK>``, then the tokens kept, most frequent first, then
    a labelled model's label tokens (:mod:`charlm.text.labels`). ``encode`` cuts a text with
    :func:`split`, which never gives a label token (``<`` is always a token of its own), so a text
    never reads as a label; ``decode`` is the base class's (the text of each token, ``<UNK>``
    dropped)."""

    kind = "words"
    noun = "token"
    split = staticmethod(split)
    split_js = TOKEN_JS

    def __init__(self, tokens, spelling):
        tokens = list(tokens)
        if tokens[:2] != [EOS, UNK] or len(set(tokens)) != len(tokens):
            raise ValueError("a vocabulary starts with <EOS>, <UNK> and has no repeated token")
        if any(split(t) != [t] and not is_label(t) for t in tokens[2:]):
            raise ValueError("a word vocabulary holds tokens as words.split cuts them, and labels")
        self.tokens = tokens
        self.index = {t: i for i, t in enumerate(tokens) if i >= 2}
        self.spelling = spelling

    def encode(self, text):
        """int32 token ids of text's tokens; tokens outside the vocabulary map to <UNK>."""
        parts = split(text)
        get = self.index.get
        return np.fromiter((get(t, UNK_ID) for t in parts), np.int32, len(parts))

    def unknown(self, text):
        """The tokens of text that are not in the vocabulary, in order of first appearance."""
        return list(dict.fromkeys(t for t in split(text) if t not in self.index))

    def costs(self, text):
        """(tokens, <UNK> count, nats the <UNK>s pay for their spelling) of text."""
        parts = split(text)
        missing = [t for t in parts if t not in self.index]
        return len(parts), len(missing), -sum(self.spelling.log_prob(t) for t in missing)

    def arrays(self):
        return self.spelling.arrays()

    def whole_tokens(self, start):
        """``start``, the beginning of a longer text, without its last token, which the rest of
        the text may lengthen (``goo`` of ``good``)."""
        tokens = split(start)
        return start[:len(start) - len(tokens[-1])] if len(tokens) > 1 else start

    def fillers(self):
        """(V,) bool: the tokens ``charlm fill`` may put in a blank: the words."""
        return np.array([i >= 2 and is_word(t) for i, t in enumerate(self.tokens)], np.bool_)

    def blanks(self, text, blank):
        """(the pieces of text between its blanks, each blank's position in text): a word
        model's blank is a run of ``blank`` characters, and stands for a whole word, so a word
        put there must read back as a token of its own. UsageError if text has no blank, or a
        blank that touches a word."""
        mark = re.compile(re.escape(blank) + "+")
        runs = list(mark.finditer(text))
        if not runs:
            raise UsageError(f"no blank in {text!r}: mark each missing word with a run of "
                             f"{blank!r} (or choose the mark with --blank)")
        pieces = mark.split(text)
        for run, before, after in zip(runs, pieces, pieces[1:]):
            if not _stands_alone(before, after):
                raise UsageError(f"the blank at {run.start()} of {text!r} is part of a word: a "
                                 "word model's blank stands for a whole word, so mark all of it "
                                 f"(e.g. \"the {blank * 3} sat\")")
        return pieces, [run.start() for run in runs]

    def following(self, allowed):
        """``vocab.drawable``'s rows 0 and 1, then the two classes of ``kernels.draw.row_after``:
        row 2 marks the words, row 3 the runs of spaces (no newline), and rows 4 and 5 are row 1
        without them. A word drawn after a word, or a run of spaces after a run of spaces, would
        read back as one token, not two (the training text never holds such a pair, since
        :func:`split` takes the longest match). Where a class would leave nothing to draw, it
        leaves row 1 as it is."""
        kinds = [(i >= 2 and is_word(t), i >= 2 and t.isspace() and "\n" not in t)
                 for i, t in enumerate(self.tokens)]
        words, spaces = np.array(kinds, np.bool_).reshape(-1, 2).T
        rows = [allowed[0], allowed[1], words, spaces]
        for members in (words, spaces):
            after = allowed[1] & ~members
            rows.append(after if after.any() else allowed[1])
        return np.ascontiguousarray(np.stack(rows))


def _stands_alone(before, after):
    """Whether a word put between the texts before and after reads back as a token of its own
    (a word joins the characters beside it only through a letter, a digit, or an apostrophe or
    hyphen with one of those beyond it: two characters on each side decide)."""
    left = before[-2:]
    at = 0
    for token in split(left + "a" + after[:2]):
        if at == len(left):
            return token == "a"
        at += len(token)
    return False


def vocab_for(kind, tokens, arrays):
    """The vocabulary a checkpoint holds: its ``tokens`` (config) and ``vocab`` entries."""
    if kind == "words":
        return WordVocab(tokens, Spelling.from_arrays(arrays))
    return Vocab(tokens)


# ---- a corpus cut into words ---------------------------------------------------------------------

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
        from .corpus import Corpus
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
        from .prepared import TokenIds
        return TokenIds(self.mapped, new_id)

    def line_spans(self):
        """(n, 2) rows (start, length) in :meth:`ids` of the lines that are not blank, in tokens."""
        if self.mapped is not None:
            return self.corpus.word_line_spans()
        if self._lines is None:
            from .prepared import index_lines
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
        from . import corpus as data
        if config.mode == "lines":
            spans = self.line_spans()
            train, _ = data.split_line_indices(len(spans), config.val_frac, config.seed)
            return spans[train]
        n_train = int((len(self.numbers) - 1) * (1.0 - config.val_frac))
        return np.array([[1, n_train]], np.int64)

    def vocab(self, config):
        """(:class:`WordVocab`, notice) from the training part's counts, and a labelled
        corpus's label tokens (module docstring)."""
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
        if not kept and config.vocab_size is None:
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
    from dataclasses import replace
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
    from . import corpus as data
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


def name_unknown_prime(model, prime):
    """``charlm sample`` with a word model: name on stderr, once, the tokens of the prime read as
    <UNK>."""
    unknown = model.vocab.unknown(prime)
    if unknown:
        import sys
        shown = ", ".join(repr(t) for t in unknown[:20]) + (", ..." if len(unknown) > 20 else "")
        print(f"note: --prime has {len(unknown)} token(s) not in the model's vocabulary, read as "
              f"<UNK>: {shown}", file=sys.stderr)
