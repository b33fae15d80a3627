"""Turning text into token ids at memory speed, for corpora larger than memory (Numba).

``charlm.text.prepared`` drives these over a file in chunks: the text is decoded (and checked) by
``charlm.text.textfile`` and re-encoded as UTF-8, and :func:`utf8_ids` walks those bytes once, giving
each new character the next id in order of first appearance, counting every one and scanning the
line structure on the way.

UTF-8, for the code point c of each character (the input is valid: Python encoded it)::

    c < 2^7    0xxxxxxx
    c < 2^11   110xxxxx 10xxxxxx
    c < 2^16   1110xxxx 10xxxxxx 10xxxxxx
    else       11110xxx 10xxxxxx 10xxxxxx 10xxxxxx
"""
import numpy as np
from numba import njit

KERNEL = dict(cache=True, nogil=True)

# the line scan's state, carried from chunk to chunk by :func:`utf8_ids` (int64, SCAN_SIZE)
HAS_TEXT, PENDING, NEWLINES, BLANK = 0, 1, 2, 3
SCAN_SIZE = 4


@njit(**KERNEL)
def utf8_ids(data, start, ids_of, codes, counts, known, space, scan, out):
    """Write the id of each character of ``data[start:]`` (uint8, valid UTF-8) into ``out``.
    Returns (where in data it stopped, ids written): at the end, or before a character whose id
    out's type cannot hold.

    ``ids_of`` (0x110000,) maps a code point to its id, 0 for one not seen yet; a new one gets id
    ``known[0]``, which then grows by one, and ``codes[id]`` records its code point. ``counts[id]``
    counts the occurrences. Ids 0 and 1 are never given (<EOS> and <UNK> keep them).

    The scan follows what ``data.detect_mode`` needs of the text with its trailing newlines
    dropped: whether the current line has a character that is not white space (``space``, by code
    point) yet (HAS_TEXT), the newlines seen since the last other character (PENDING: they count
    once another character follows), the newlines counted (NEWLINES) and the lines without a
    non-space character that they ended (BLANK)."""
    limit = np.iinfo(out.dtype).max
    has_text, pending = scan[HAS_TEXT], scan[PENDING]
    newlines, blank = scan[NEWLINES], scan[BLANK]
    n, i, size = 0, start, data.size
    while i < size:
        b = np.int64(data[i])
        if b < 0x80:
            c, width = b, 1
        elif b < 0xE0:
            c, width = ((b & 0x1F) << 6) | (np.int64(data[i + 1]) & 0x3F), 2
        elif b < 0xF0:
            c, width = (((b & 0x0F) << 12) | ((np.int64(data[i + 1]) & 0x3F) << 6)
                        | (np.int64(data[i + 2]) & 0x3F)), 3
        else:
            c, width = (((b & 0x07) << 18) | ((np.int64(data[i + 1]) & 0x3F) << 12)
                        | ((np.int64(data[i + 2]) & 0x3F) << 6) | (np.int64(data[i + 3]) & 0x3F)), 4
        t = ids_of[c]
        if t == 0:
            if known[0] > limit:
                break
            t = known[0]
            known[0] += 1
            ids_of[c] = t
            codes[t] = c
        counts[t] += 1
        out[n] = t
        n += 1
        i += width
        if c == 10:
            pending += 1
        else:
            if pending > 0:
                # the first pending newline ends the current line, each further one an empty line
                blank += (1 - has_text) + pending - 1
                newlines += pending
                pending, has_text = 0, 0
            if not space[c]:
                has_text = 1
    scan[HAS_TEXT], scan[PENDING], scan[NEWLINES], scan[BLANK] = has_text, pending, newlines, blank
    return i, n


@njit(**KERNEL)
def line_spans(ids, offset, newline, space, state, out):
    """The lines of ids (split at ``newline``) that hold a non-space character, as rows
    (start, length) of ``out`` (int64, (n, 2)), starts counted from ``offset`` (the position of
    ids[0] in the whole text); returns the rows written. ``state`` = [start of the current line,
    whether it has a non-space character] carries from chunk to chunk; the caller closes the
    last line."""
    k = 0
    start, has_text = state[0], state[1]
    for i in range(ids.size):
        t = ids[i]
        if t == newline:
            if has_text:
                out[k, 0] = start
                out[k, 1] = offset + i - start
                k += 1
            start, has_text = offset + i + 1, 0
        elif not space[t]:
            has_text = 1
    state[0], state[1] = start, has_text
    return k
