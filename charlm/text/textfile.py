"""Text files: the one place where charlm opens and decodes a file of text.

A file is read in chunks of ``CHUNK_BYTES`` and decoded incrementally, so memory does not grow
with the file. Whoever reads it (training, ``score --file``) gets the same text:

- the encoding is looked up once; an unknown one, or a codec that does not turn bytes into text,
  is a UsageError;
- a NUL byte marks a binary file, except in the UTF-16 and UTF-32 families, where it is text; a
  file that looks like UTF-16 or UTF-32 (a byte-order mark, or NULs in every other byte) read
  in another encoding is refused with the ``--encoding`` to pass;
- a leading byte-order mark is dropped, and ``\\r\\n`` and ``\\r`` become ``\\n``;
- a byte that cannot be decoded is reported with its offset in the file, wherever the chunks fall.

Text that is not valid in its encoding raises ``charlm.errors.NotInEncoding``, whose message advises
``--encoding``; a reader that has no such option (the novelty check's corpus) rewords it.
"""
import codecs
import os

from ..errors import CorpusError, NotInEncoding, UsageError

CHUNK_BYTES = 1 << 20
NUL_IS_TEXT = ("utf-16", "utf-32")    # codec names (as codecs.lookup spells them) of these families


class TextFile:
    """The text of the file at path in ``encoding``. ``size`` is the file's size in bytes;
    ``bytes_read`` counts the bytes that :meth:`chunks` has read so far (for progress).
    A missing, unreadable or folder path raises CorpusError here, before any reading."""

    def __init__(self, path, encoding="utf-8", chunk_bytes=CHUNK_BYTES):
        self.path, self.chunk_bytes = path, chunk_bytes
        self.codec = _text_codec(encoding)
        self.size = _readable_size(path)
        self.bytes_read = 0

    def chunks(self):
        """The text in pieces of about chunk_bytes (never empty strings): together, the whole
        text. Raises CorpusError for a binary file or bytes that are not valid in the encoding."""
        # utf-8-sig is utf-8 without a leading BOM, which is dropped here anyway; its own decoder
        # would count error offsets from after the BOM
        name = "utf-8" if self.codec.name == "utf-8-sig" else self.codec.name
        decoder = codecs.getincrementaldecoder(name)()
        check_nul = not name.startswith(NUL_IS_TEXT)
        first, held = True, ""     # a chunk's final \r waits: it may be half of a \r\n
        try:
            with open(self.path, "rb") as f:
                while True:
                    data = f.read(self.chunk_bytes)
                    if check_nul:
                        self._refuse_nul(data)
                    text = self._decode(decoder, data, final=not data)
                    self.bytes_read += len(data)
                    if first and text:
                        first = False
                        if text[0] == "\ufeff":
                            text = text[1:]
                    text, held = held + text, ""
                    if data and text.endswith("\r"):
                        text, held = text[:-1], "\r"
                    if "\r" in text:     # a search is far cheaper than two replaces
                        text = text.replace("\r\n", "\n").replace("\r", "\n")
                    if text:
                        yield text
                    if not data:
                        return
        except OSError as e:
            raise CorpusError(f"cannot read {self.path}: {e.strerror or e}") from None

    def _refuse_nul(self, data):
        nul = data.find(b"\0")
        if nul >= 0:
            hint = wide_encoding(data) if self.bytes_read == 0 else None
            if hint is not None:
                raise NotInEncoding(f"{self.path} looks like {hint[0]} text ({hint[1]}), not "
                                    f"{self.codec.name}", self.codec.name, hint[2])
            raise CorpusError(f"{self.path} looks like a binary file (NUL byte at offset "
                              f"{self.bytes_read + nul}), not text")

    def _decode(self, decoder, data, final):
        # the decoder holds back the first bytes of a character cut by the chunk's end, and an
        # error's position counts from them
        pending = len(decoder.getstate()[0])
        try:
            return decoder.decode(data, final)
        except UnicodeError as e:
            hint = wide_encoding(data) if self.bytes_read == 0 else None
            if hint is not None:        # e.g. UTF-16 without one ASCII character: no NUL byte
                raise NotInEncoding(f"{self.path} looks like {hint[0]} text ({hint[1]}), not "
                                    f"{self.codec.name}", self.codec.name, hint[2]) from None
            if not isinstance(e, UnicodeDecodeError):   # the codec's own refusal of the text
                why = str(e).encode("unicode_escape").decode("ascii")     # on one line
                raise NotInEncoding(f"{self.path} cannot be read as {self.codec.name}: {why}",
                                    self.codec.name) from None
            offset = self.bytes_read - pending + e.start
            raise NotInEncoding(f"{self.path} is not valid {self.codec.name}: byte "
                                f"0x{e.object[e.start]:02x} at offset {offset} ({e.reason})",
                                self.codec.name) from None


# byte-order marks, longest first: UTF-32's little-endian mark begins with UTF-16's
BOMS = ((codecs.BOM_UTF32_LE, "UTF-32", "utf-32"), (codecs.BOM_UTF32_BE, "UTF-32", "utf-32"),
        (codecs.BOM_UTF16_LE, "UTF-16", "utf-16"), (codecs.BOM_UTF16_BE, "UTF-16", "utf-16"))


def wide_encoding(head):
    """(name, why, --encoding value) when the first bytes of a file look like UTF-16 or UTF-32
    text, else None: a byte-order mark, or (without one) a NUL in every other byte of the first
    64 and in none of the others, which is how UTF-16 spells ASCII."""
    for bom, name, encoding in BOMS:
        if head.startswith(bom):
            return name, "it starts with a byte-order mark", encoding
    sample = head[:64] if len(head) >= 64 else head[:len(head) // 2 * 2]
    if len(sample) >= 4:
        even, odd = sample[0::2], sample[1::2]
        if odd.count(0) == len(odd) and even.count(0) == 0:
            return "UTF-16", "little-endian, without a byte-order mark", "utf-16-le"
        if even.count(0) == len(even) and odd.count(0) == 0:
            return "UTF-16", "big-endian, without a byte-order mark", "utf-16-be"
    return None


def read_text(path, encoding="utf-8"):
    """The whole text of the file at path, as :class:`TextFile` reads it."""
    return "".join(TextFile(path, encoding).chunks())


def _text_codec(encoding):
    try:
        codec = codecs.lookup(encoding)
    except LookupError:
        raise UsageError(f"--encoding: unknown encoding {encoding!r}") from None
    try:
        "".encode(codec.name)       # refuses codecs from bytes to bytes or str to str (base64, rot13)
    except LookupError:
        raise UsageError(f"--encoding: {encoding!r} is not a text encoding") from None
    return codec


def _readable_size(path):
    if not os.path.exists(path):
        raise CorpusError(f"no such file: {path}")
    if os.path.isdir(path):
        raise CorpusError(f"{path} is a folder; give a text file")
    try:
        with open(path, "rb") as f:
            return os.fstat(f.fileno()).st_size
    except OSError as e:
        raise CorpusError(f"cannot read {path}: {e.strerror or e}") from None
