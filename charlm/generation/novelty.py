"""The novelty check: does a sample appear in the training text, or is it new?

- lines mode: the corpus's lines go into a set; a sample, prime included (the line the model
  wrote), is in the corpus when it is one of them (a sample of several lines, when each is).
- stream mode: the length of the longest substring that the sample (without the prime) shares with
  the corpus; it is in the corpus when the whole sample is. The corpus is indexed by a suffix
  array built with numpy by prefix doubling: the suffixes are sorted by their first w characters
  packed into one int64 key (w = 62 // bits per character: 8 for tiny Shakespeare), then by
  pairs of ranks, doubling the sorted length each round until every rank is distinct (its time
  for tiny Shakespeare: docs/sampling.md). A query extends a running best: at each position i of
  the sample, while s[i : i + best + 1] occurs in the corpus (a binary search of the suffix array),
  best grows by one, so a sample of m characters costs at most m + best searches.

The corpus is read through :func:`charlm.text.corpus.read_corpus`, like training's. A checkpoint written
by this version of charlm records the absolute path of its training corpus next to the corpus's
fingerprint (``RunState.corpus_path``, ``RunState.corpus``): :func:`training_corpus` uses that
file while its fingerprint still matches.
"""
import os
from dataclasses import dataclass

import numpy as np

from ..store import checkpoint
from ..text.corpus import Corpus, fingerprint, read_corpus
from ..errors import CorpusError, NotInEncoding, UsageError
from .options import MAX_NUM

MIN_DRAWS = 1000           # --novel: draws allowed before giving up, at least this many ...
DRAWS_PER_SAMPLE = 100     # ... and this many per sample asked for


@dataclass
class Novelty:
    """What the check found for one sample."""
    in_corpus: bool
    longest_shared: int | None = None   # stream mode: characters of the longest shared substring

    @property
    def new(self):
        return not self.in_corpus

    def to_json(self):
        data = {"in_corpus": self.in_corpus}
        if self.longest_shared is not None:
            data["longest_shared"] = self.longest_shared
        return data


class Reference:
    """A training text, indexed for the check in the model's mode ("lines" or "stream")."""

    def __init__(self, text, mode, name):
        self.text, self.mode, self.name = text, mode, name
        if mode == "lines":
            self.lines = set(text.split("\n"))
        else:
            codes = np.frombuffer(text.encode("utf-32-le"), np.uint32)
            self.suffixes = suffix_array(codes)

    def check(self, sample, prime=""):
        """The :class:`Novelty` of one sample (the text generated after ``prime``). An empty
        sample is never new: there is nothing in it."""
        if self.mode == "lines":
            line = prime + sample
            return Novelty(not sample or all(part in self.lines for part in line.split("\n")))
        shared = self.longest_shared(sample)
        return Novelty(shared == len(sample), shared)

    def longest_shared(self, s):
        """Length of the longest substring of s that occurs in the text."""
        best = 0
        for i in range(len(s)):
            while i + best < len(s) and self.occurs(s[i:i + best + 1]):
                best += 1
        return best

    def occurs(self, q):
        """Whether q occurs in the text: the first suffix not below q starts with it."""
        text, sa = self.text, self.suffixes
        m = len(q)
        lo, hi = 0, len(sa)
        while lo < hi:
            mid = (lo + hi) // 2
            start = sa[mid]
            if text[start:start + m] < q:
                lo = mid + 1
            else:
                hi = mid
        return lo < len(sa) and text.startswith(q, sa[lo])


def suffix_array(codes):
    """The start positions of the suffixes of codes (n,) (any integers), in sorted order; a
    suffix that is a prefix of another sorts first. Prefix doubling (see the module docstring)."""
    n = len(codes)
    if n == 0:
        return np.zeros(0, np.int64)
    _, symbols = np.unique(codes, return_inverse=True)
    symbols = symbols.astype(np.int64) + 1            # 0: past the end
    bits = int(symbols.max()).bit_length()
    width = max(1, 62 // bits)
    padded = np.concatenate([symbols, np.zeros(width, np.int64)])
    key = np.zeros(n, np.int64)
    for k in range(width):
        key = (key << bits) | padded[k:k + n]
    rank = dense_ranks(key)
    span = width
    while rank.max() < n - 1 and span < n:
        following = np.zeros(n, np.int64)
        following[:n - span] = rank[span:] + 1        # the rank of the suffix `span` later
        rank = dense_ranks(rank * (n + 1) + following)
        span *= 2
    order = np.empty(n, np.int64)
    order[rank] = np.arange(n)
    return order


def dense_ranks(key):
    """rank[i] = the number of distinct values of key below key[i]."""
    order = np.argsort(key, kind="stable")
    ordered = key[order]
    rank = np.empty(len(key), np.int64)
    rank[order] = np.concatenate([[0], np.cumsum(ordered[1:] != ordered[:-1])])
    return rank


def reference(model, corpus=None, encoding="utf-8"):
    """The :class:`Reference` to check ``model``'s samples against: the file ``corpus``, or
    without one the model's training corpus (:func:`training_corpus`)."""
    if corpus is not None:
        try:
            found = read_corpus(corpus, encoding)
        except NotInEncoding as e:      # sample has no --encoding to pass
            raise e.for_one_encoding("the novelty check (--corpus)") from None
    else:
        found = training_corpus(model)
    if model.config.labels:
        found = texts_of_labelled_lines(found, model.config.labels)
    return Reference(found.text, model.config.mode, found.name)


def texts_of_labelled_lines(found, labels):
    """A labelled model's samples copy texts, never their labels: the texts of found's lines when
    every line is LABEL<TAB>TEXT of one of ``labels`` (a labelled corpus, as the model's own),
    else found as it is (a file of texts, as one of --label NAME=FILE)."""
    from ..text.labels import parse
    try:
        pairs = parse(found.text, found.name)
    except CorpusError:
        return found
    if any(label not in labels for label, _ in pairs):
        return found
    return Corpus("\n".join(text for _, text in pairs), found.name)


def training_corpus(model):
    """The corpus ``model`` was trained on, read again from the path its checkpoint records, if
    the text there still has the fingerprint it had; else UsageError saying why, and that
    ``--corpus PATH`` names one."""
    where = model.path or "this model"
    run = stored_run(model)
    if run is None or run.corpus is None:
        raise UsageError(f"{where} does not record its training corpus: give --corpus PATH")
    if run.corpus_path is None and model.config.labels:     # --label NAME=FILE: several files
        raise UsageError(f"{where} was trained on --label NAME=FILE files, not one corpus: give "
                         "--corpus PATH")
    if run.corpus_path is None:       # the bundled names, or a checkpoint from before the path
        found = read_corpus(None)
        if fingerprint(found.text) != run.corpus:
            raise UsageError(f"{where} does not record where its training corpus is (written by "
                             "an earlier charlm): give --corpus PATH")
        return found
    if not os.path.isfile(run.corpus_path):
        raise UsageError(f"the training corpus of {where}, {run.corpus_path}, is gone: give "
                         "--corpus PATH")
    try:
        found = read_corpus(run.corpus_path, run.corpus_encoding)
    except NotInEncoding:       # it read in this encoding once, so it has changed
        found = None
    if found is None or fingerprint(found.text) != run.corpus:
        raise UsageError(f"{run.corpus_path} has changed since {where} was trained on it: give "
                         "--corpus PATH")
    return found


def stored_run(model):
    """The run state in the model's checkpoint file, or None (no file, or no training state)."""
    if model.path is None:
        return None
    training = checkpoint.load(model.path, with_training_state=True).training
    return None if training is None else training.run


def novel_samples(model, check, num, prime="", seed=None, **options):
    """Draw samples (``options`` as :func:`charlm.generation.sampler.sample` takes them) until ``num``
    distinct new ones are found or max(MIN_DRAWS, DRAWS_PER_SAMPLE * num) draws are spent;
    returns (the new samples, their Novelty, the number of samples drawn, how many of those were
    not new: in the training text). ``check`` is a Reference."""
    cap = max(MIN_DRAWS, DRAWS_PER_SAMPLE * num)
    seeds = np.random.default_rng(seed)
    found, checks, drawn, copied, seen = [], [], 0, 0, set()
    while len(found) < num and drawn < cap:
        batch = min(cap - drawn, max(8, 2 * (num - len(found))), MAX_NUM)   # one call's most
        texts = model.sample(num=batch, prime=prime, seed=int(seeds.integers(2**63)), **options)
        drawn += batch
        for text in texts:
            result = check.check(text, prime)
            copied += not result.new
            if result.new and text not in seen and len(found) < num:
                found.append(text)
                seen.add(text)
                checks.append(result)
    return found, checks, drawn, copied
