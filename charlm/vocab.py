"""The vocabulary: the corpus's characters (Unicode code points) plus ``<EOS>`` and ``<UNK>``."""
from collections import Counter

import numpy as np

from .errors import UsageError

EOS, UNK = "<EOS>", "<UNK>"
EOS_ID, UNK_ID = 0, 1


def require_unicode(text):
    """Raise UsageError if text holds a lone surrogate (bytes that are not UTF-8, passed on by
    Python from the command line): it is no character, and no token id can stand for it."""
    if any("\ud800" <= ch <= "\udfff" for ch in text):
        raise UsageError(f"{text[:40]!r} is not valid Unicode text (it holds a lone surrogate, "
                         "e.g. from bytes that are not UTF-8)")


class Vocab:
    """Token ids: 0 is ``<EOS>``, 1 is ``<UNK>``, then the characters in code-point order."""

    def __init__(self, tokens):
        tokens = list(tokens)
        if tokens[:2] != [EOS, UNK] or len(set(tokens)) != len(tokens):
            raise ValueError("a vocabulary starts with <EOS>, <UNK> and has no repeated token")
        if any(len(t) != 1 for t in tokens[2:]):
            raise ValueError("vocabulary entries after <EOS> and <UNK> must be single characters")
        self.tokens = tokens
        self.index = {t: i for i, t in enumerate(tokens) if i >= 2}
        # A lookup table for code points below 65536 makes encoding a vectorised gather.
        self._table = np.full(65536, UNK_ID, np.int32)
        for ch, i in self.index.items():
            if ord(ch) < 65536:
                self._table[ord(ch)] = i

    @classmethod
    def from_text(cls, text, min_count=1):
        """Every character of text that occurs at least min_count times; the rest become <UNK>.
        Newlines are always kept: they are the structure of the text."""
        counts = Counter(text)
        chars = sorted(ch for ch, n in counts.items() if n >= min_count or ch == "\n")
        return cls([EOS, UNK] + chars)

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
