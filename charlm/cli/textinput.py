"""The text that ``charlm neurons`` and ``charlm gradients`` read: a TEXT argument, or the start
of a file (``--file PATH --chars N``)."""
import click

from ..errors import CorpusError, UsageError

DEFAULT_CHARS = 2000


def text_options(command):
    """The --file, --chars and --encoding options, and the TEXT argument."""
    command = click.option("--encoding", default="utf-8", show_default=True, metavar="NAME",
                           help="Encoding of --file.")(command)
    command = click.option("--chars", type=int, default=DEFAULT_CHARS, show_default=True,
                           metavar="N",
                           help="Read at most the first N characters of --file.")(command)
    command = click.option("--file", "file_path", metavar="PATH",
                           help="Read the text from a file instead of TEXT.")(command)
    return click.argument("text", required=False)(command)


def read_text(text, file_path, chars, encoding):
    """(text, truncated): TEXT itself, or the first ``chars`` characters of the file (truncated
    says whether the file had more). Raises UsageError or CorpusError with one line."""
    from ..textfile import TextFile
    if (text is None) == (file_path is None):
        raise UsageError("give a TEXT argument or --file PATH (one of them)")
    if chars < 1:
        raise UsageError("--chars must be >= 1")
    if file_path is not None:
        pieces, length = [], 0
        for piece in TextFile(file_path, encoding).chunks():
            pieces.append(piece)
            length += len(piece)
            if length > chars:
                break
        text = "".join(pieces)
        truncated = len(text) > chars
        text = text[:chars]
        if not text:
            raise CorpusError(f"{file_path} is empty: there is nothing to read")
    else:
        truncated = False
    if not text:
        raise UsageError("the text is empty: there is nothing to read")
    return text, truncated
