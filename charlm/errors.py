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


class CheckpointError(CharlmError):
    """A checkpoint that cannot be read, written or trusted."""

    exit_code = 4


class TrainingDiverged(CharlmError):
    """The loss became NaN or infinite; the last good checkpoint is left as it was."""

    exit_code = 5


class OutputInUse(CharlmError):
    """Another charlm run holds the lock on the file this one would write (docs/files.md)."""

    exit_code = 6
