"""Stop strings: a sample ends at the first occurrence of any of them in the text it generates
(never in the prime). "First" is the occurrence that ends earliest; of two that end at the same
character, the longer. The stop string is cut from the sample unless ``keep_stop`` is set.

Samples are generated in chunks, so a stop string may begin in one chunk and end in the next.
:class:`StopScanner` sees the text piece by piece and holds back the end of what it has seen
while that end could still be the beginning of a stop string: no text after a stop string is
ever given out, and none before it is lost.
"""
import numpy as np

from ..errors import UsageError


def check_stops(model, stop):
    """The stop strings as a tuple (``stop`` may be None, one string or a list of them); raises
    UsageError for an empty one or one with characters the model never generates."""
    if stop is None:
        return ()
    stops = (stop,) if isinstance(stop, str) else tuple(stop)
    for s in stops:
        if not isinstance(s, str):
            raise UsageError(f"--stop must be text, not {type(s).__name__}")
        if not s:
            raise UsageError("--stop must not be empty (an empty string would stop every sample "
                             "before its first character)")
        unknown = [ch for ch in model.vocab.unknown(s) if ch != "\n"]   # <EOS> can write \n
        if unknown and model.vocab.kind == "chars":     # words: matched on the text written
            shown = ", ".join(repr(ch) for ch in unknown)
            raise UsageError(f"--stop {s!r} can never occur: the model does not know {shown}")
    return stops


def first_stop(text, stops):
    """(start, end) of the first occurrence of any stop string in text, or None."""
    found = None
    for s in stops:
        start = text.find(s)
        if start < 0:
            continue
        end = start + len(s)
        if found is None or end < found[1] or (end == found[1] and start < found[0]):
            found = (start, end)
    return found


def ending_stop(text, stops):
    """The longest stop string that text ends with ('' if none)."""
    return max((s for s in stops if text.endswith(s)), key=len, default="")


def stop_table(vocab, stops):
    """The stop strings as token ids for the beam kernel: (S, M) int64 rows padded with -1, and
    their lengths (S,), M the longest (at least 1 so that the arrays are never empty)."""
    if stops and vocab.kind != "chars":
        raise UsageError("--stop with --beam matches stop strings token by token, one character "
                         "each; a word model's tokens are words: use --stop without --beam")
    M = max([len(s) for s in stops] + [1])
    table = np.full((len(stops), M), -1, np.int64)
    for k, s in enumerate(stops):
        table[k, :len(s)] = vocab.encode(s)
    return table, np.array([len(s) for s in stops], np.int64)


class StopScanner:
    """One sample's stop strings, fed its text piece by piece: :meth:`feed` returns the text that
    is safe to give out, :meth:`finish` the rest when the sample has ended otherwise."""

    def __init__(self, stops, keep_stop=False):
        self.stops, self.keep_stop = stops, keep_stop
        self.held = ""
        self.stopped = False

    def feed(self, text):
        """The part of held + text that comes before any stop string (and the stop string itself
        with keep_stop); sets ``stopped`` when one has occurred. Nothing is returned after that."""
        if self.stopped:
            return ""
        window = self.held + text
        found = first_stop(window, self.stops)
        if found is not None:
            self.stopped, self.held = True, ""
            return window[:found[1] if self.keep_stop else found[0]]
        keep = self._partial(window)
        self.held = window[len(window) - keep:]
        return window[:len(window) - keep]

    def finish(self):
        """The held text, given out when the sample has ended without a stop string."""
        text, self.held = self.held, ""
        return "" if self.stopped else text

    def _partial(self, text):
        """Length of the longest end of text that begins some stop string (shorter than it)."""
        longest = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(text)), longest, -1):
                if text.endswith(s[:k]):
                    longest = k
                    break
        return longest
