"""The ``charlm`` command: a thin layer over the Python API (see ``charlm.api``)."""
import click

from ..version import __version__
from .classify import classify
from .common import fail, pipe_closed
from .export import export
from .fill import fill
from .gradients import gradients
from .import_model import import_model
from .info import info
from .neurons import neurons
from .prepare import prepare
from .report import report
from .sample import sample
from .score import score
from .train import train


class OneLineErrors(click.Group):
    """Click reports a bad option with the usage text and the error over several lines; charlm's
    rule is one line for every error, so the message is reworded to name the help to read."""

    # click turns a closed pipe into exit 1 inside its own main; charlm's rule is a quiet exit 0
    # (docs/files.md), so the pipe is caught before click sees it: while parsing (--help) and
    # while a command runs
    def make_context(self, *args, **kwargs):
        try:
            return super().make_context(*args, **kwargs)
        except BrokenPipeError:
            pipe_closed()

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            pipe_closed()

    def main(self, args=None, prog_name=None, **kwargs):
        try:
            return super().main(args, prog_name, standalone_mode=False, **kwargs)
        except click.exceptions.NoArgsIsHelpError as e:
            click.echo(e.ctx.get_help())
            raise SystemExit(0) from None
        except click.UsageError as e:
            command = e.ctx.command_path if e.ctx else "charlm"
            fail(f"{e.format_message()} (see {command} --help)", 2)
        except click.exceptions.Abort:
            fail("interrupted", 130)
        except BrokenPipeError:
            pipe_closed()
        except click.ClickException as e:
            fail(e.format_message(), e.exit_code)


@click.group(cls=OneLineErrors,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="charlm")
def main():
    """Train character-level language models (RNN, GRU, LSTM) and generate and score text.

    \b
    Examples:
      charlm train                      # train on the bundled list of names (about a minute)
      charlm sample --num 5             # five new names from charlm.npz
      charlm score "Anna" "Xqzt"        # how probable is each text?
      charlm fill "Em_a"                # fill in the missing letter
      charlm train input.txt --max-time 10m --out shakespeare.npz
      charlm info shakespeare.npz
      charlm report --model shakespeare.npz   # one HTML page: curves, neurons, a sampler
      charlm train corpus.tsv --labels  # LABEL<TAB>TEXT lines; then classify, sample --label
    """


main.add_command(train)
main.add_command(sample)
main.add_command(score)
main.add_command(info)
main.add_command(prepare)
main.add_command(fill)
main.add_command(neurons)
main.add_command(gradients)
main.add_command(report)
main.add_command(export)
main.add_command(import_model)
main.add_command(classify)
