"""What every command shares: the consoles, the error edge, the compile notice, option types.

Output that is not a terminal (a file, a pipe) is written for reading there: no colour, no
wrapping at the terminal's width, no trailing spaces, no progress frames (docs/files.md). A
reader that stops reading (``| head``) ends any command quietly with exit 0 (:func:`pipe_closed`).
"""
import functools
import json
import os
import sys
import threading

import click

from ..config import DEFAULT_MODEL
from ..errors import CharlmError

MODEL_HELP = "Checkpoint to use."
FILE_WIDTH = 10_000     # a console that is not a terminal lays tables out as wide as they need


def model_option(help_text=MODEL_HELP):
    """The ``--model PATH`` option of the commands that read one checkpoint."""
    return click.option("--model", "model_path", default=DEFAULT_MODEL, show_default=True,
                        metavar="PATH", help=help_text)


def refuse_given(names, applies):
    """Raise UsageError if an option among ``names`` (their parameter names) was given on the
    command line where it would change nothing: it applies only to ``applies``."""
    from click.core import ParameterSource

    from ..errors import UsageError
    context = click.get_current_context()
    for name in names:
        if context.get_parameter_source(name) is ParameterSource.COMMANDLINE:
            option = next(p.opts[0] for p in context.command.params if p.name == name)
            raise UsageError(f"{option} applies to {applies}")


def consoles():
    """(stdout, stderr) rich consoles; imported lazily because rich costs start-up time. A
    console whose stream is not a terminal never wraps a line and strips trailing spaces."""
    console = _console_class()
    return console(highlight=False), console(stderr=True, highlight=False)


def in_colour(console):
    """Whether a view is shown in colour on this console: a terminal that takes colour (not with
    NO_COLOR set, nor TERM=dumb); else the plain form that files get, which says it in text."""
    return console.is_terminal and console.color_system is not None and not console.no_color


@functools.cache
def _console_class():
    from rich.console import Console

    class CharlmConsole(Console):
        """rich's Console, with charlm's rules for files and closed pipes."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            if not self.is_terminal:
                self.width = FILE_WIDTH
                self.soft_wrap = True

        def print(self, *objects, **kwargs):
            if self.is_terminal:
                return super().print(*objects, **kwargs)
            with self.capture() as captured:
                super().print(*objects, **kwargs)
            text = "\n".join(line.rstrip() for line in captured.get().split("\n"))
            try:
                self.file.write(text)
                self.file.flush()
            except BrokenPipeError:
                self.on_broken_pipe()

        def on_broken_pipe(self):
            # rich's own exits with code 1; charlm's rule is a quiet exit 0, decided by the caller
            silence(self.file)
            raise BrokenPipeError

    return CharlmConsole


def silence(stream):
    """Point stream's file descriptor at /dev/null, so that what is still written to it (at the
    latest, the interpreter's final flush) does not fail again on a closed pipe."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def pipe_closed():
    """The reader of stdout or stderr has gone (``charlm info | head -1``): end quietly with
    exit 0. The reader asked for only part of the output, so a script under ``set -o pipefail``
    sees success, as ``sample`` always gave. Both streams are silenced: which one closed is not
    known here."""
    silence(sys.stdout)
    silence(sys.stderr)
    sys.exit(0)


def fail(message, exit_code):
    """One line on stderr and an exit code: how every error ends."""
    try:
        click.echo(click.style("error: ", fg="red", bold=True) + message, err=True)
    except BrokenPipeError:
        silence(sys.stderr)
    sys.exit(exit_code)


def reports_errors(command):
    """Turn charlm's errors (and Ctrl-C outside training) into one line and an exit code, and a
    closed pipe into a quiet exit 0."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            result = command(*args, **kwargs)
            sys.stdout.flush()      # a closed pipe found here, not in the interpreter's exit
            return result
        except CharlmError as e:
            fail(str(e), e.exit_code)
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except BrokenPipeError:
            pipe_closed()
    return wrapper


def print_json(data):
    click.echo(json.dumps(data, ensure_ascii=False, indent=None))


class compile_notice:
    """A spinner on stderr that appears only if the block takes longer than ``delay`` seconds,
    which in practice means Numba is compiling kernels on a first run (later runs load them from
    the cache in well under that)."""

    def __init__(self, message="Compiling kernels (first run only, cached afterwards)", delay=0.4,
                 enabled=True):
        self.message, self.delay, self.enabled = message, delay, enabled
        self._status = None
        self._timer = None
        self._lock = threading.Lock()

    def _show(self):
        with self._lock:
            if self._timer is None:
                return
            from rich.console import Console
            self._status = Console(stderr=True).status(self.message, spinner="dots")
            self._status.start()

    def __enter__(self):
        if self.enabled and sys.stderr.isatty():
            self._timer = threading.Timer(self.delay, self._show)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(self, *exc):
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._status is not None:
                self._status.stop()
                self._status = None
        return False
