"""The ``charlm`` command: a thin layer over the Python API (see ``charlm.api``)."""
import click

from .. import __version__
from .info import info
from .sample import sample
from .score import score
from .train import train


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="charlm")
def main():
    """Train character-level language models (RNN, GRU, LSTM) and generate and score text.

    \b
    Examples:
      charlm train                      # train on the bundled list of names (about a minute)
      charlm sample --num 5             # five new names from charlm.npz
      charlm score "Anna" "Xqzt"        # how probable is each text?
      charlm train input.txt --max-time 10m --out shakespeare.npz
      charlm info shakespeare.npz
    """


main.add_command(train)
main.add_command(sample)
main.add_command(score)
main.add_command(info)
