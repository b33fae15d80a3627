"""The one error hierarchy of charlm.

Library code raises these; only the command line turns them into a one-line message and an exit
code (``CharlmError.exit_code``). Anything else reaching the command line is a bug.
"""


class CharlmError(Exception):
    """Base of every error charlm reports to a user."""

    exit_code = 1


class UsageError(CharlmError):
    """An option or argument out of range, or options that contradict each other."""

    exit_code = 2


class CorpusError(CharlmError):
    """A corpus that cannot be read or used: missing, a directory, not text, empty, too short."""

    exit_code = 3


class NotInEncoding(CorpusError):
    """A file whose bytes are not text in ``encoding``: ``problem`` says where, ``likely`` is the
    encoding it looks like (None: unknown). The message advises the ``--encoding`` to pass."""

    def __init__(self, problem, encoding, likely=None):
        super().__init__(problem, encoding, likely)     # all of them, so that it pickles
        self.problem, self.encoding, self.likely = problem, encoding, likely

    def __str__(self):
        if self.likely is not None:
            return f"{self.problem}: pass --encoding {self.likely}"
        return f"{self.problem}; read another encoding with e.g. --encoding latin-1"

    def for_one_encoding(self, reader):
        """The same error for ``reader``, which has no ``--encoding`` option: the file has to
        be converted."""
        source = self.likely or "ENCODING"
        return CorpusError(f"{self.problem}; {reader} reads {self.encoding} only: convert the "
                           f"file first, e.g. iconv -f {source} -t {self.encoding}")


class CheckpointError(CharlmError):
    """A checkpoint that cannot be read, written or trusted."""

    exit_code = 4


class TrainingDiverged(CharlmError):
    """The loss became NaN or infinite; the last good checkpoint is left as it was."""

    exit_code = 5


class OutputInUse(CharlmError):
    """Another charlm run holds the lock on the file this one would write (docs/files.md)."""

    exit_code = 6
