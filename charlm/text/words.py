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
first (ties in code-point order), counted on the training part of the corpus alone
(:mod:`charlm.text.wordcorpus`): without ``--vocab-size``, the tokens seen at least twice (or
``--min-count`` times, if higher), at most ``DEFAULT_MAX_WORDS`` of them; with ``--vocab-size N``,
the N most frequent tokens seen at least ``--min-count`` times. Every other token reads as
``<UNK>``. A labelled corpus's label tokens follow (:mod:`charlm.text.labels`); its texts are
counted, not its label names.

The spelling of an ``<UNK>`` (:class:`Spelling`): so that the probability of a text under a word
model is the probability of its characters, an ``<UNK>`` also pays for the token it stands for:

    P(w | <UNK>) = s (1 - s)^(n - 1) prod_i p(c_i),    w = c_1 .. c_n

a character unigram ``p`` of the training text (add-one counts over its characters, plus one count
for all the characters it lacks, shared evenly among those code points) and a length that stops
after each character with probability ``s`` = the out-of-vocabulary tokens of the training text
divided by their characters (of all its tokens when every one is in the vocabulary). The
checkpoint keeps it under ``words.chars`` (the characters, 1-d str), ``words.char_log_probs``
(float64, log p of each, then log p of any one other character) and ``words.stop_prob`` (s).
"""
import math
import re
from collections import Counter

import numpy as np

from ..errors import UsageError
from .vocab import EOS, UNK, UNK_ID, Vocab, is_label

DEFAULT_MAX_WORDS = 10_000
CODE_POINTS = 0x110000

JOINERS = ("'", "’", "-")     # join the letters or digits on either side into one word
_WORD = r"[^\W_]+(?:['’\-][^\W_]+)*"
TOKEN = re.compile(rf"{_WORD}|\n|[^\S\n]+|.", re.DOTALL)
WORD = re.compile(_WORD)
# TOKEN for the report page's JavaScript (flags "gsu"): Python's [^\W_] is what str.isalnum
# accepts, the letters and numbers of Unicode, which JavaScript names [\p{L}\p{N}]. They differ
# on U+001C..U+001F and U+0085 (whitespace to Python), U+FEFF (to JavaScript) and the letters of
# Unicode versions one of the two does not know yet (docs/words.md)
_WORD_JS = r"[\p{L}\p{N}]+(?:['’\-][\p{L}\p{N}]+)*"
TOKEN_JS = rf"{_WORD_JS}|\n|[^\S\n]+|."
# The two classes of WordVocab.following, as JavaScript regular expressions of a whole token
# (flags "u"): the report page's sampler classes a prime's unknown last token by its text
CLASSES_JS = (rf"^{_WORD_JS}$", r"^[^\S\n]+$")


def split(text):
    """The tokens of text (see the module docstring); ``"".join(split(text)) == text``."""
    return TOKEN.findall(text)


def split_chunks(chunks):
    """The tokens of a text given in pieces (an iterable of str), as a list per piece: together,
    ``split("".join(chunks))``. A piece's tokens that the next piece may change
    (:func:`settled`) wait for it."""
    held = ""
    for chunk in chunks:
        tokens = split(held + chunk)
        k = settled(tokens)
        held = "".join(tokens[k:])
        yield tokens[:k]
    yield split(held)


def settled(tokens):
    """How many of a text's tokens no text after it can change: all but the last, and but a word
    before a joiner that ends the text (``well-`` then ``known``). A token that ends two or more
    characters before the end is decided by the characters before it (a word goes on only
    through a letter, or a joiner followed by a letter)."""
    if len(tokens) >= 2 and tokens[-1] in JOINERS and is_word(tokens[-2]):
        return len(tokens) - 2
    return max(len(tokens) - 1, 0)


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
    classes_js = CLASSES_JS

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
        """``start``, the beginning of a longer text, without the tokens the rest of the text
        may change (:func:`settled`: ``goo`` of ``good``, ``well-`` of ``well-known``)."""
        tokens = split(start)
        k = settled(tokens)
        return "".join(tokens[:k]) if k else start

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

    def following(self, allowed, prime=""):
        """``vocab.drawable``'s rows 0 and 1, then the two classes of ``kernels.draw.row_after``:
        row 2 marks the words, row 3 the runs of spaces (no newline), and rows 4 and 5 are row 1
        without them. A word drawn after a word, or a run of spaces after a run of spaces, would
        read back as one token, not two (the training text never holds such a pair, since
        :func:`split` takes the longest match). Where a class would leave nothing to draw, it
        leaves row 1 as it is. <UNK> is never drawn, so it is read only in a prime: it takes the
        class of the prime's last token when that one is out of the vocabulary."""
        last = split(prime)[-1:]
        texts = ["", ""] + list(self.tokens[2:])      # <EOS> and <UNK> are of neither class
        if last and last[0] not in self.index:
            texts[UNK_ID] = last[0]
        kinds = [(is_word(t), t.isspace() and "\n" not in t) for t in texts]
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
