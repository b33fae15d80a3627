"""What every command shares: the consoles, the error edge, the compile notice, option types."""
import functools
import json
import sys
import threading

import click

from ..errors import CharlmError

MODEL_HELP = "Checkpoint to use."


def consoles():
    """(stdout, stderr) rich consoles; imported lazily because rich costs start-up time."""
    from rich.console import Console
    return Console(highlight=False), Console(stderr=True, highlight=False)


def fail(message, exit_code):
    """One line on stderr and an exit code: how every error ends."""
    click.echo(click.style("error: ", fg="red", bold=True) + message, err=True)
    sys.exit(exit_code)


def reports_errors(command):
    """Turn charlm's errors (and Ctrl-C outside training) into one line and an exit code."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except CharlmError as e:
            fail(str(e), e.exit_code)
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except BrokenPipeError:
            sys.exit(0)
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
