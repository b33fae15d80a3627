"""The vocabulary: the corpus's characters (Unicode code points) plus ``<EOS>`` and ``<UNK>``."""
from collections import Counter

import numpy as np

from ..errors import UsageError

EOS, UNK = "<EOS>", "<UNK>"
EOS_ID, UNK_ID = 0, 1
LABEL_PREFIX = "<label:"       # a label's token, "<label:NAME>": an input only (charlm.text.labels)
GLYPHS = {" ": "␣", "\n": "⏎", "\t": "⇥"}   # whitespace made visible in lists of choices


def is_label(token):
    """Whether token names a label (an input that starts a labelled example, never a target)."""
    return token.startswith(LABEL_PREFIX) and token.endswith(">")


def visible(token):
    """A token as a list of choices shows it: a space, newline or tab as its glyph, a run of
    whitespace (a word model's token) glyph by glyph, any other token as it is."""
    return "".join(GLYPHS.get(ch, ch) for ch in token) if token.isspace() else token


def require_unicode(text):
    """Raise UsageError if text holds a lone surrogate (bytes that are not UTF-8, passed on by
    Python from the command line): it is no character, and no token id can stand for it."""
    if any("\ud800" <= ch <= "\udfff" for ch in text):
        raise UsageError(f"{text[:40]!r} is not valid Unicode text (it holds a lone surrogate, "
                         "e.g. from bytes that are not UTF-8)")


def kept(chars, counts, min_count, mode):
    """The characters that get a token of their own: those that occur at least min_count times
    (the rest become <UNK>). A newline is the structure of a stream, kept whatever its count; in
    lines mode it separates the examples (<EOS> stands for it) and no line holds one, so the model
    gets no token for it."""
    if mode == "lines":
        return [ch for ch, n in zip(chars, counts) if n >= min_count and ch != "\n"]
    return [ch for ch, n in zip(chars, counts) if n >= min_count or ch == "\n"]


def drawable(vocab, mode, prime=""):
    """(2 + 2C, V) bool: the tokens generation may draw as the first token of a text that has no
    prime (row 0) and anywhere else (row 1), then the rows of C classes of tokens that restrict
    the token after them (``kernels.draw.row_after``): those of ``vocab.following`` for a text
    that starts with ``prime``, and in lines mode :func:`after_eos`. <UNK> is never drawn: it
    names no character. In lines mode no training line is blank, so a line never starts with
    <EOS>; and a line holds no newline (models trained before lines mode left the newline out of
    the vocabulary still have a token for it, which training never used as a target)."""
    allowed = np.ones((2, len(vocab)), np.bool_)
    allowed[:, UNK_ID] = False
    allowed[:, [i for i, t in enumerate(vocab.tokens) if is_label(t)]] = False   # inputs only
    if mode == "lines":
        allowed[0, EOS_ID] = False
        if "\n" in vocab.index:
            allowed[:, vocab.index["\n"]] = False
    rows = vocab.following(allowed, prime)
    return after_eos(rows) if mode == "lines" else rows


def after_eos(rows):
    """The rows of :func:`drawable` with one class more, <EOS>, after which a line starts: what
    row 0 allows. A line never starts with <EOS>, so none is blank even where <EOS> does not end
    the text (``--no-stop-at-eos``)."""
    classes = (rows.shape[0] - 2) // 2
    eos = np.zeros(rows.shape[1], np.bool_)
    eos[EOS_ID] = True
    return np.ascontiguousarray(np.concatenate([rows[:2 + classes], eos[None],
                                                rows[2 + classes:], rows[:1]]))


class Vocab:
    """Token ids: 0 is ``<EOS>``, 1 is ``<UNK>``, then the characters in code-point order.
    ``kind`` names how text is cut into tokens: here characters; ``charlm.text.words.WordVocab``
    cuts it into words."""

    kind = "chars"
    noun = "character"          # what one token is, as the views name it
    split = staticmethod(list)  # the tokens of a text, as strings
    classes_js = ()             # the classes of ``following`` as JavaScript (none: see words)
    # The same cut as a JavaScript regular expression (flags "gsu"): one code point
    split_js = "."

    def __init__(self, tokens):
        tokens = list(tokens)
        if tokens[:2] != [EOS, UNK] or len(set(tokens)) != len(tokens):
            raise ValueError("a vocabulary starts with <EOS>, <UNK> and has no repeated token")
        if any(len(t) != 1 and not is_label(t) for t in tokens[2:]):
            raise ValueError("vocabulary entries after <EOS> and <UNK> must be single characters")
        self.tokens = tokens
        self.index = {t: i for i, t in enumerate(tokens) if i >= 2}
        # A lookup table for code points below 65536 makes encoding a vectorised gather.
        self._table = np.full(65536, UNK_ID, np.int32)
        for ch, i in self.index.items():
            if len(ch) == 1 and ord(ch) < 65536:     # a label token is no character
                self._table[ord(ch)] = i

    @classmethod
    def from_text(cls, text, min_count=1, mode="stream"):
        """The vocabulary of text for a model of ``mode``: see :func:`kept`."""
        counts = Counter(text)
        return cls([EOS, UNK] + sorted(kept(counts.keys(), counts.values(), min_count, mode)))

    def __len__(self):
        return len(self.tokens)

    def encode(self, text):
        """int32 token ids of text's characters; unknown characters map to <UNK>."""
        codes = np.frombuffer(text.encode("utf-32-le"), np.uint32)
        ids = self._table[np.minimum(codes, 65535)]
        wide = np.flatnonzero(codes >= 65535)
        for k in wide:
            ids[k] = self.index.get(text[k], UNK_ID)
        return ids

    def unknown(self, text):
        """The characters of text that are not in the vocabulary, in order of first appearance."""
        return list(dict.fromkeys(ch for ch in text if ch not in self.index))

    def arrays(self):
        """Checkpoint entries of the vocabulary besides ``vocab`` (none for characters)."""
        return {}

    def whole_tokens(self, start):
        """``start``, the beginning of a longer text, cut to the tokens that the rest of the text
        cannot change: for characters, all of it."""
        return start

    def fillers(self):
        """(V,) bool: the tokens ``charlm fill`` may put in a blank: the characters (never
        <EOS>, <UNK> or a label)."""
        return np.array([i >= 2 and not is_label(t) for i, t in enumerate(self.tokens)], np.bool_)

    def blanks(self, text, blank):
        """(the pieces of text between its blanks, each blank's position in text): a character
        model's blank is one ``blank`` character. UsageError if text has none."""
        positions = [i for i, ch in enumerate(text) if ch == blank]
        if not positions:
            raise UsageError(f"no blank in {text!r}: mark each missing character with {blank!r} "
                             "(or choose the mark with --blank)")
        return text.split(blank), positions

    def following(self, allowed, prime=""):
        """:func:`drawable`'s rows, and the rows that restrict a token by the one before it
        (``kernels.draw.row_after``): none for characters, any may follow any."""
        return allowed

    def decode(self, ids, eos="\n"):
        """Text of token ids; <EOS> becomes eos and <UNK> is dropped."""
        out = []
        for i in ids:
            i = int(i)
            if i == EOS_ID:
                out.append(eos)
            elif i != UNK_ID:
                out.append(self.tokens[i])
        return "".join(out)
