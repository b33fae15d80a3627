"""Prepared corpora: a text read once, in chunks, into a memory-mappable file of token ids, so that
training never holds the text in memory (``charlm prepare``; ``charlm train`` prepares a corpus
over ``LARGE_BYTES`` by itself).

Where: the folder ``CORPUS.charlm/`` beside the corpus, or, where that cannot be written, a folder
in the user's cache (``$XDG_CACHE_HOME/charlm/prepared/``, named after a hash of the corpus's
absolute path). It holds

- ``ids.bin``: ``<EOS>`` and then the id of every character of the text (as
  :mod:`charlm.text.textfile` reads it): id k >= 2 is the character ``chars[k - 2]`` of meta.json, the
  characters numbered in order of first appearance, so that one pass writes the file. One byte per
  id when there are at most 256 ids (<EOS>, <UNK> and the characters), two up to 65,536, else
  four. Training reads them through a table to the ids of its vocabulary (:class:`TokenIds`):
  ``Vocab.from_text(text, min_count, mode)``'s, ``<EOS>``, ``<UNK>``, then the characters in
  code-point order, with those seen fewer than --min-count times folded into ``<UNK>`` (and, in
  lines mode, the newline too: see ``vocab.kept``).
- ``lines.bin`` (lines mode): int64 rows (start, length) of the lines that hold a non-space
  character, as positions in ``ids.bin``; built by ``charlm prepare`` for a text in lines mode,
  else when a run first needs it.
- ``words.bin``, ``words.json`` (for word models, ``--tokens words``): ``<EOS>`` and then the number
  of every word token of the text (``charlm.text.words.split``), the tokens numbered from 2 in
  order of first appearance, in the narrowest type as for ``ids.bin``; ``words.json`` lists the
  distinct tokens in number order. Written by ``charlm prepare --tokens words``, else when a run
  first needs them, in one more pass over the text (``WORD_CHUNK_BYTES`` at a time). Training
  counts its vocabulary on them and reads them through a table to its ids
  (``charlm.text.wordcorpus.WordCorpus``). ``word_lines.bin``: the line index in these positions,
  built as ``lines.bin`` is.
- ``meta.json``: the source's absolute path, size, modification time (ns) and encoding; the
  number of characters and the CRC-32 of the text in UTF-8 (what a checkpoint's corpus check
  compares); the characters (in id order) and their counts; what mode detection needs of the
  lines; the id type; under ``words``, what describes the word copy (tokens, distinct tokens,
  newlines, id type, line index), once there is one.

A prepared corpus is current while its source keeps the size and modification time it had and is
read in the same encoding; otherwise it is stale, and preparing again rebuilds it. ``meta.json``
is written last (and removed first on a rebuild), so a folder without it holds nothing usable;
a lock file keeps two processes from preparing the same corpus at once.

Speed: one pass decodes the text (the one text reader, :mod:`charlm.text.textfile`), re-encodes each
chunk as UTF-8 and turns it into ids, counting the characters and following the lines (a Numba
kernel, :mod:`charlm.kernels.tokens`): no Python per character.
"""
import fcntl
import functools
import hashlib
import json
import mmap
import os
import time
import zlib

import numpy as np

from . import corpus as data
from . import words
from ..errors import CorpusError
from ..kernels import tokens as kernels
from .textfile import TextFile
from .vocab import EOS, EOS_ID, UNK, UNK_ID, Vocab, kept

FORMAT, VERSION = "charlm-prepared", 1
LARGE_BYTES = 64 << 20           # train prepares a corpus larger than this by itself
CHUNK_BYTES = 16 << 20           # bytes of text decoded at a time
IDS_CHUNK = 64 << 20             # ids rewritten or scanned at a time
WORD_CHUNK_BYTES = 1 << 20       # bytes of text cut into words at a time: about 250,000 tokens,
                                 # each a Python str while its chunk is numbered
WORD_FILES = ("words.bin", "words.json", "word_lines.bin")
UNICODE = 0x110000               # code points


class MappedIds:
    """The ids of a file, mapped read-only (``array``). The kernel maps a whole large folio of the
    page cache (up to 2 MB here) at each page fault, so reading a few ids in many places would
    soon count much of the file in the process's resident memory: every RELEASE_READS reads the
    mapped pages are let go again (``MADV_DONTNEED``; they stay in the page cache)."""

    RELEASE_READS = 64

    def __init__(self, path, dtype):
        with open(path, "rb") as f:
            self.buffer = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self.array = np.frombuffer(self.buffer, dtype)
        self.reads = 0

    def read_done(self):
        self.reads += 1
        if self.reads % self.RELEASE_READS == 0 and hasattr(mmap, "MADV_DONTNEED"):
            self.buffer.madvise(mmap.MADV_DONTNEED)


class TokenIds:
    """Token ids in a file (:class:`MappedIds`), as a sequence of int32 ids in a given vocabulary
    (``new_id`` maps the file's ids to it; None keeps them). A slice is another view; an index
    array, or ``np.asarray``, reads the ids into memory."""

    def __init__(self, mapped, new_id=None, ids=None):
        self.mapped, self.new_id = mapped, new_id
        self.ids = mapped.array if ids is None else ids

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return TokenIds(self.mapped, self.new_id, self.ids[index])
        return self._read(self.ids[index])

    def __array__(self, dtype=None, copy=None):
        ids = self._read(self.ids)
        return ids if dtype is None else ids.astype(dtype, copy=False)

    def _read(self, part):
        ids = self.new_id[part] if self.new_id is not None else part.astype(np.int32)
        self.mapped.read_done()
        return ids


class PreparedCorpus:
    """A prepared corpus: the interface of an in-memory ``data.Corpus`` (``chars``,
    ``detect_mode``, ``vocab``, ``fingerprint``, ``ids``, ``line_spans``) over the files of its
    folder."""

    def __init__(self, folder, meta):
        self.folder, self.meta = folder, meta
        self.name = meta["source"]["path"]
        self.chars = meta["tokens"]
        self.ids_path = os.path.join(folder, "ids.bin")
        self._mapped = self._words = None

    def detect_mode(self):
        s = self.meta["line_stats"]
        return data.mode_for_lines(s["lines"], s["blank"] > 0, s["chars"])

    def vocab(self, min_count=1, mode="stream"):
        """The vocabulary that ``Vocab.from_text(text, min_count, mode)`` gives for the text."""
        return Vocab([EOS, UNK] + sorted(kept(self.meta["chars"], self.meta["counts"],
                                              min_count, mode)))

    def fingerprint(self):
        return {"chars": self.chars, "crc32": self.meta["crc32"]}

    def mapped_ids(self):
        """The file's ids (<EOS> first), as :class:`MappedIds`."""
        if self._mapped is None:
            try:
                mapped = MappedIds(self.ids_path, np.dtype(self.meta["dtype"]))
            except (OSError, ValueError):        # missing, unreadable, or empty (no mapping)
                raise self._damaged(self.ids_path, "ids") from None
            if len(mapped.array) != self.chars + 1:
                raise self._damaged(self.ids_path, "ids")
            self._mapped = mapped
        return self._mapped

    def _damaged(self, path, what):
        """The error for a file of the folder that is missing or does not match meta.json."""
        return CorpusError(f"{path} does not hold the {what} its meta.json describes; run charlm "
                           f"prepare {self.name} --force")

    def ids(self, vocab):
        """<EOS> and the text's token ids in vocab, as :class:`TokenIds`."""
        chars = self.meta["chars"]
        new_id = np.array([EOS_ID, UNK_ID] + [vocab.index.get(ch, UNK_ID) for ch in chars],
                          np.int32)
        identity = np.array_equal(new_id, np.arange(len(new_id)))
        return TokenIds(self.mapped_ids(), None if identity else new_id)

    def line_spans(self):
        """(n, 2) int64 rows (start, length) of the lines with a non-space character."""
        return self._line_spans(lambda meta: meta, "lines.bin", lambda: (
            self.mapped_ids().array, self.meta["chars"], self.newline_count()))

    def newline_count(self):
        """The newlines of the text."""
        chars = self.meta["chars"]
        return self.meta["counts"][chars.index("\n")] if "\n" in chars else 0

    @property
    def has_words(self):
        """Whether this copy holds the word tokens (:meth:`word_ids` reads them at once)."""
        return self.meta.get("words") is not None

    def word_ids(self, progress=None):
        """(types, MappedIds): ``<EOS>`` and the number of every word token of the text,
        ``types[k - 2]`` being the token numbered k. Written now if this copy has none yet (one
        more pass over the text, followed by ``progress(done, total)`` in bytes)."""
        if not self.has_words:
            with _locked(self.folder):
                self.meta = _read_meta(self.folder) or self.meta
                if not self.has_words:
                    self.meta["words"] = _build_words(self, progress)
                    _write_meta(self.folder, self.meta)
        if self._words is None:
            entry = self.meta["words"]
            try:
                with open(os.path.join(self.folder, "words.json"), encoding="utf-8") as f:
                    types = json.load(f)
                mapped = MappedIds(os.path.join(self.folder, "words.bin"),
                                   np.dtype(entry["dtype"]))
            except (OSError, ValueError):
                raise self._damaged(self.folder, "word tokens") from None
            if len(mapped.array) != entry["tokens"] + 1 or len(types) != entry["types"]:
                raise self._damaged(self.folder, "word tokens")
            self._words = types, mapped
        return self._words

    def word_line_spans(self):
        """:meth:`line_spans` in the positions of :meth:`word_ids`."""
        types, mapped = self.word_ids()
        return self._line_spans(lambda meta: meta["words"], "word_lines.bin", lambda: (
            mapped.array, types, self.meta["words"]["newlines"]))

    def _line_spans(self, entry, name, source):
        """The line index kept in the file name of the folder, its row count in
        ``entry(meta)["line_index"]``; built from ``source()`` = (ids, tokens, newlines) if there is
        none yet."""
        path = os.path.join(self.folder, name)
        if entry(self.meta).get("line_index") is None:
            with _locked(self.folder):
                self.meta = _read_meta(self.folder) or self.meta
                if entry(self.meta).get("line_index") is None:
                    entry(self.meta)["line_index"] = _write_line_index(*source(), path)
                    _write_meta(self.folder, self.meta)
        rows = entry(self.meta)["line_index"]
        if rows == 0:
            return np.zeros((0, 2), np.int64)
        try:
            return np.memmap(path, np.int64, "r", shape=(rows, 2))
        except (OSError, ValueError):        # missing, unreadable, or shorter than meta.json says
            raise self._damaged(path, "line index") from None


# ---- finding a prepared copy ---------------------------------------------------------------------

def folders(path):
    """Where the prepared copy of the corpus at path may be: beside it, then in the cache."""
    absolute = os.path.abspath(path)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    key = hashlib.sha1(absolute.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return [absolute + ".charlm",
            os.path.join(cache, "charlm", "prepared", f"{key}-{os.path.basename(absolute)}")]


def find(path, encoding="utf-8"):
    """(current, stale): the current prepared copy of the corpus at path read in encoding (a
    :class:`PreparedCorpus`, or None), and why a copy there is not current (or None)."""
    source = _source(path, encoding)
    stale = None
    for folder in folders(path):
        meta = _read_meta(folder)
        if meta is None:
            continue
        if meta["source"] == source:
            return PreparedCorpus(folder, meta), None
        was = meta["source"]
        stale = (f"it was prepared read as {was['encoding']}"
                 if dict(was, encoding=source["encoding"]) == source else
                 "it changed since it was prepared")
    return None, stale


def _source(path, encoding):
    stat = os.stat(path)
    return {"path": os.path.abspath(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
            "encoding": TextFile(path, encoding).codec.name}


def _read_meta(folder):
    try:
        with open(os.path.join(folder, "meta.json"), encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != VERSION:
        return None
    return meta


def _write_meta(folder, meta):
    tmp = os.path.join(folder, "meta.json.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(meta, f, ensure_ascii=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(folder, "meta.json"))


def _writable_folder(path):
    for folder in folders(path):
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError:
            continue
        if os.access(folder, os.W_OK):
            return folder
    raise CorpusError(f"cannot write a prepared copy of {path} beside it or in the cache folder "
                      f"({folders(path)[1]})")


class _locked:
    """An exclusive lock on a prepared corpus's folder (its file ``.lock``) for a block."""

    def __init__(self, folder):
        self.path = os.path.join(folder, ".lock")

    def __enter__(self):
        self.file = open(self.path, "a")
        fcntl.flock(self.file, fcntl.LOCK_EX)

    def __exit__(self, *exc):
        fcntl.flock(self.file, fcntl.LOCK_UN)
        self.file.close()


# ---- preparing ----------------------------------------------------------------------------------

def prepare_corpus(path, encoding="utf-8", mode="auto", force=False, progress=None,
            chunk_bytes=CHUNK_BYTES):
    """The current prepared copy of the corpus at path, built now if there is none (or if
    ``force``). Returns (PreparedCorpus, built). ``progress(done, total)`` follows the build in
    bytes of the source. With mode "lines", or "auto" when the text reads as lines, the line
    index is built too."""
    text_file = TextFile(path, encoding, chunk_bytes)      # checks the path and the encoding
    if not force:
        current, _ = find(path, encoding)
        if current is not None:
            if _reads_as_lines(current, mode):
                current.line_spans()        # a copy prepared in stream mode has no line index yet
            return current, False
    existed = {f: os.path.isdir(f) for f in folders(path)}
    folder = _writable_folder(path)
    try:
        return _prepare_locked(path, encoding, mode, force, progress, text_file, folder)
    except BaseException:       # a bad corpus leaves no folder behind (docs/files.md)
        if not existed.get(folder, True):
            _remove(os.path.join(folder, ".lock"))
            _remove(folder)
        raise


def prepare_words(corpus, mode="auto", progress=None):
    """Give a prepared corpus its word copy (``charlm prepare --tokens words``) and, with mode
    "lines", or "auto" when the text reads as lines, its word line index, where it has none yet.
    Returns whether it wrote the word copy."""
    built = not corpus.has_words
    corpus.word_ids(progress)
    if _reads_as_lines(corpus, mode):
        corpus.word_line_spans()
    return built


def _reads_as_lines(corpus, mode):
    return mode == "lines" or (mode == "auto" and corpus.detect_mode()[0] == "lines")


def _remove(path):
    """Remove a file, or a folder if it is empty; nothing if that cannot be done."""
    try:
        os.rmdir(path) if os.path.isdir(path) else os.remove(path)
    except OSError:
        pass


def _prepare_locked(path, encoding, mode, force, progress, text_file, folder):
    with _locked(folder):
        current = None if force else find(path, encoding)[0]
        if current is not None:        # another process prepared it while this one waited
            return current, False
        started = time.perf_counter()
        source = _source(path, encoding)
        ids_path = os.path.join(folder, "ids.bin")
        try:
            meta = _build(text_file, ids_path + ".tmp", progress)
        except BaseException:       # the copy there was (for another encoding, say) stays whole
            _remove(ids_path + ".tmp")
            raise
        for name in ("meta.json", "lines.bin") + WORD_FILES:     # meta.json first: not current
            if os.path.exists(os.path.join(folder, name)):
                os.remove(os.path.join(folder, name))
        os.replace(ids_path + ".tmp", ids_path)
        meta.update(format=FORMAT, version=VERSION, source=source, line_index=None)
        corpus = PreparedCorpus(folder, meta)
        if _reads_as_lines(corpus, mode):
            meta["line_index"] = _write_line_index(corpus.mapped_ids().array, meta["chars"],
                                                   corpus.newline_count(),
                                                   os.path.join(folder, "lines.bin"))
        meta["seconds"] = round(time.perf_counter() - started, 3)
        _write_meta(folder, meta)
    return corpus, True


def _build(text_file, tmp, progress):
    """Write the text's ids to the file tmp; returns the meta entries that describe them."""
    ids_of = np.zeros(UNICODE, np.int32)
    codes, counts = np.zeros(UNICODE + 2, np.int64), np.zeros(UNICODE + 2, np.int64)
    known = np.array([2], np.int64)
    scan = np.zeros(kernels.SCAN_SIZE, np.int64)
    crc = chars = 0
    with _IdsWriter(tmp) as writer:
        for text in text_file.chunks():
            encoded = np.frombuffer(text.encode("utf-8"), np.uint8)
            crc = zlib.crc32(encoded, crc)
            done, stopped = 0, False
            while done < len(encoded):
                if stopped:             # at a character whose id the ids' type cannot hold
                    writer.widen(id_type(int(known[0]) + 1))
                out = writer.buffer(len(text))
                done, n = kernels.utf8_ids(encoded, done, ids_of, codes, counts, known,
                                           _space_table(), scan, out)
                writer.write(out[:n])
                chars, stopped = chars + n, True
            if progress is not None:
                progress(text_file.bytes_read, text_file.size)
    symbols = [chr(c) for c in codes[2:known[0]]]
    if all(ch.isspace() for ch in symbols):
        raise CorpusError(f"{text_file.path} is empty: there is nothing to learn from")
    # the lines of the text once its trailing newlines are dropped (as data.detect_mode splits it)
    newlines, pending = int(scan[kernels.NEWLINES]), int(scan[kernels.PENDING])
    blank = int(scan[kernels.BLANK]) + 1 - int(scan[kernels.HAS_TEXT])
    return {"tokens": chars, "crc32": crc, "dtype": writer.dtype.name, "chars": symbols,
            "counts": counts[2:known[0]].tolist(),
            "line_stats": {"lines": newlines + 1, "blank": blank,
                           "chars": chars - pending - newlines}}


@functools.lru_cache(maxsize=None)
def _space_table():
    """(0x110000,) bool: which code points are white space (str.isspace, as str.strip reads it)."""
    table = np.zeros(UNICODE, bool)
    table[[c for c in range(UNICODE) if chr(c).isspace()]] = True
    return table


class _IdsWriter:
    """Appends ids to a file, after <EOS>, in the narrowest unsigned type that holds the ids so
    far; rewrites what it wrote in a wider type when they outgrow it."""

    def __init__(self, path):
        self.path, self.dtype = path, np.dtype(np.uint8)
        self._buffer = np.empty(0, self.dtype)

    def __enter__(self):
        self.file = open(self.path, "wb")
        np.zeros(1, self.dtype).tofile(self.file)
        return self

    def buffer(self, size):
        """An array of at least size ids of the current type."""
        if len(self._buffer) < size or self._buffer.dtype != self.dtype:
            self._buffer = np.empty(size, self.dtype)
        return self._buffer

    def write(self, ids):
        ids.tofile(self.file)

    def widen(self, dtype):
        """Rewrite the ids written so far as dtype, and go on in it."""
        self.file.close()
        narrow = np.memmap(self.path, self.dtype, "r")
        wide_path = self.path + ".wide"
        with open(wide_path, "wb") as f:
            for start in range(0, len(narrow), IDS_CHUNK):
                narrow[start:start + IDS_CHUNK].astype(dtype).tofile(f)
        del narrow
        os.replace(wide_path, self.path)
        self.file, self.dtype = open(self.path, "ab"), dtype

    def __exit__(self, *exc):
        self.file.close()


def id_type(tokens):
    """The narrowest unsigned type for ids of a vocabulary of this many tokens."""
    return np.dtype(np.uint8 if tokens <= 1 << 8 else np.uint16 if tokens <= 1 << 16 else np.uint32)


def _write_line_index(ids, tokens, newlines, path):
    """Write the rows (start, length) of the non-blank lines of ids to path (see
    :func:`index_lines`; the text has ``newlines`` newlines); returns their number."""
    out = np.memmap(path, np.int64, "w+", shape=(newlines + 1, 2))
    rows_out = out.view(np.ndarray)
    rows = index_lines(ids, tokens, rows_out)
    out.flush()
    del rows_out, out
    os.truncate(path, rows * 16)
    return rows


def index_lines(ids, tokens, out):
    """Write to out (int64, a row more than the newlines) the rows (start, length) of the lines of
    ids (``<EOS>``, then ids k >= 2 standing for ``tokens[k - 2]``) that hold a token that is not
    white space; returns their number."""
    space = np.array([False, False] + [t.isspace() for t in tokens])
    newline = tokens.index("\n") + 2 if "\n" in tokens else -1
    state = np.array([1, 0], np.int64)        # the first line starts after <EOS>
    rows = 0
    for start in range(1, len(ids), IDS_CHUNK):
        rows += kernels.line_spans(ids[start:start + IDS_CHUNK], start, newline, space, state,
                                   out[rows:])
    if state[1]:
        out[rows] = state[0], len(ids) - state[0]
        rows += 1
    return rows


def _build_words(corpus, progress):
    """Write words.bin and words.json from the corpus's source text (which must be the one it was
    prepared from); returns the meta entry that describes them."""
    source = corpus.meta["source"]
    if _source(source["path"], source["encoding"]) != source:
        raise CorpusError(f"{corpus.name} changed since it was prepared: run charlm prepare "
                          f"{corpus.name} again")
    text_file = TextFile(source["path"], source["encoding"], WORD_CHUNK_BYTES)
    numbers = words.TokenNumbers()
    tokens = newlines = 0
    path = os.path.join(corpus.folder, "words.bin")
    try:
        with _IdsWriter(path + ".tmp") as writer:
            for part in words.split_chunks(_reported(text_file, progress)):
                ids = numbers.of(part)
                if len(numbers) + 2 > np.iinfo(writer.dtype).max + 1:
                    writer.widen(id_type(len(numbers) + 2))
                writer.write(ids.astype(writer.dtype))
                tokens, newlines = tokens + len(part), newlines + part.count("\n")
    except BaseException:
        _remove(path + ".tmp")
        raise
    with open(os.path.join(corpus.folder, "words.json"), "w", encoding="utf-8") as f:
        json.dump(numbers.types, f, ensure_ascii=True)
    os.replace(path + ".tmp", path)
    return {"tokens": tokens, "types": len(numbers), "newlines": newlines,
            "dtype": writer.dtype.name, "line_index": None}


def _reported(text_file, progress):
    """The chunks of text_file, calling ``progress(done, total)`` in bytes after each."""
    for text in text_file.chunks():
        yield text
        if progress is not None:
            progress(text_file.bytes_read, text_file.size)


# ---- what train reads ----------------------------------------------------------------------------

def open_corpus(path, encoding="utf-8", mode="auto", reporter=None):
    """The corpus train reads: the bundled names (path None) or a small file in memory
    (``data.Corpus``); or a prepared copy (:class:`PreparedCorpus`): the current one if there is
    one, else prepared now for a file over LARGE_BYTES or one that was prepared before and has
    changed since. Preparing says so through ``reporter`` (``notice``, ``preparing``)."""
    if path is None:
        return data.read_corpus(None)
    size = TextFile(path, encoding).size        # checks the path and the encoding
    current, stale = find(path, encoding)
    if current is not None:
        return current
    if size <= LARGE_BYTES and not stale:
        return data.read_corpus(path, encoding)
    if reporter is not None:
        why = stale or f"it is over {LARGE_BYTES >> 20} MB"
        reporter.notice(f"preparing {path} ({size / 1e6:,.0f} MB) once, as charlm prepare does "
                        f"({why}): training then reads its token ids from disk, and later runs "
                        "reuse them")
    corpus, _ = prepare_corpus(path, encoding, mode,
                        progress=reporter.preparing if reporter is not None else None)
    return corpus
