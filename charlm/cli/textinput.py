"""The text that ``charlm neurons`` and ``charlm gradients`` read: a TEXT argument, or the start
of a file (``--file PATH --chars N``)."""
import click

from ..errors import CorpusError, UsageError

DEFAULT_CHARS = 2000
MAX_CHARS = 100_000     # the views keep every state of every position: L x states x N x H floats


def text_options(command):
    """The --file, --chars and --encoding options, and the TEXT argument."""
    command = click.option("--encoding", metavar="NAME",
                           help="Encoding of --file.  [default: utf-8]")(command)
    command = click.option("--chars", type=int, metavar="N",
                           help=f"Read at most the first N characters of --file (at most "
                                f"{MAX_CHARS:,}).  [default: {DEFAULT_CHARS}]")(command)
    command = click.option("--file", "file_path", metavar="PATH",
                           help="Read the text from a file instead of TEXT.")(command)
    return click.argument("text", required=False)(command)


def read_text(text, file_path, chars, encoding):
    """(text, truncated): TEXT itself, or the first ``chars`` characters of the file (truncated
    says whether the file had more). Raises UsageError or CorpusError with one line."""
    from ..text.textfile import TextFile
    if (text is None) == (file_path is None):
        raise UsageError("give a TEXT argument or --file PATH (one of them)")
    if file_path is None and (chars is not None or encoding is not None):
        raise UsageError(f"{'--chars' if chars is not None else '--encoding'} applies to --file "
                         "only; a TEXT argument is read whole")
    chars = DEFAULT_CHARS if chars is None else chars
    if not 1 <= chars <= MAX_CHARS:
        raise UsageError(f"--chars must be between 1 and {MAX_CHARS:,}")
    if file_path is not None:
        pieces, length = [], 0
        for piece in TextFile(file_path, encoding or "utf-8").chunks():
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
