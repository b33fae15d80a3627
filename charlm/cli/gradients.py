"""``charlm gradients``: how far back in a text the loss still reaches the top layer's output
(see :mod:`charlm.views.gradients`), for trained models or freshly initialised cells."""
import math

import click

from ..config import Config
from .common import (DEFAULT_MODEL, compile_notice, consoles, in_colour, print_json, refuse_given,
                     reports_errors)
from .textinput import read_text, text_options

EXAMPLES = """
\b
Examples:
  charlm gradients "Maximiliano" --max-distance 10              # charlm.npz on one name
  charlm gradients --file input.txt --model rnn.npz --model gru.npz --model lstm.npz
  charlm gradients --file input.txt --cell rnn,gru,lstm --hidden 128    # untrained cells
  charlm gradients --file input.txt --model lstm.npz --max-distance 200 --json
"""
SHOWN_DISTANCES = (1, 10, 50, 100, 200, 500)     # the table's columns, those up to --max-distance


@click.command(epilog=EXAMPLES)
@text_options
@click.option("--model", "models", multiple=True, metavar="PATH",
              help="A trained checkpoint; repeat for several.  "
                   f"[default: {DEFAULT_MODEL}, without --cell]")
@click.option("--cell", "cells", metavar="C[,C...]",
              help="Freshly initialised cells (rnn, gru, lstm), comma-separated, sized by "
                   "--hidden and --layers, as `charlm train --seed` would start them.")
@click.option("--hidden", type=int, default=128, show_default=True,
              help="Units per layer of --cell.")
@click.option("--layers", type=int, default=Config.num_layers, show_default=True,
              help="Layers of --cell.")
@click.option("--seed", type=int, default=Config.seed, show_default=True,
              help="Seed of --cell's weights.")
@click.option("--max-distance", type=int, default=100, show_default=True, metavar="K",
              help="Largest distance k, in tokens: characters, or a word model's tokens.")
@click.option("--json", "as_json", is_flag=True,
              help='Print {"distances": [0..K], "distance_unit" ("characters" or "tokens"), '
                   '"curves": [{"label", "cell", "norms", "counts"}, ...]}.')
@reports_errors
def gradients(text, file_path, chars, encoding, models, cells, hidden, layers, seed, max_distance,
              as_json):
    """How strongly the loss at each token depends on the top layer's output k tokens earlier
    (characters; for a word model, its tokens): the norm of dL_t/dh_{t-k}, averaged over the
    positions t of the text, for k = 0..K. Computed in float64 by charlm's own forward pass and a
    step back through the cell per k.

    A plain RNN's gradient vanishes with distance far faster than a trained LSTM's or GRU's: the
    curve shows how far back a model can learn from. One curve per --model, or per freshly
    initialised --cell, on a log scale.
    """
    from rich.markup import escape

    from ..text.vocab import require_unicode
    text, truncated = read_text(text, file_path, chars, encoding)
    require_unicode(text)
    fresh = _cells(cells)
    if not fresh:     # a --model has its own size and weights
        refuse_given(["hidden", "layers", "seed"], "the freshly initialised networks of --cell")
    _check_sizes(hidden, layers, seed, max_distance)
    if not models and not fresh:
        models = (DEFAULT_MODEL,)
    out, err = consoles()
    if truncated and not as_json:
        err.print(f"[dim]reading the first {len(text):,} characters of {escape(file_path)} "
                  "(--chars)[/]")
    loaded = [(path, _load(path)) for path in models]
    unit = _distance_unit([model.vocab for _, model in loaded], fresh)
    curves = []
    with compile_notice("Following the gradients back through time", enabled=not as_json):
        for path, model in loaded:
            whole = model.vocab.whole_tokens(text) if truncated else text
            curves.append(_model_curve(path, model, whole, max_distance, err))
        for cell in fresh:
            curves.append(_fresh_curve(cell, text, hidden, layers, seed, max_distance))
    if as_json:
        print_json({"distances": list(range(max_distance + 1)), "distance_unit": unit,
                    "characters": len(text), "curves": curves})
        return
    out.print(_plot(curves, out, unit))
    out.print(_table(curves, max_distance))


def _cells(cells):
    from ..network.celltypes import CELLS
    from ..errors import UsageError
    names = [c.strip() for c in cells.split(",") if c.strip()] if cells is not None else []
    if cells is not None and not names:
        raise UsageError(f"--cell {cells!r} names no cell: give e.g. --cell rnn,gru,lstm")
    for name in names:
        if name not in CELLS:
            raise UsageError(f"--cell: no cell {name!r}; choose from {', '.join(sorted(CELLS))}")
    return names


def _check_sizes(hidden, layers, seed, max_distance):
    from ..errors import UsageError
    # the --cell networks start as `charlm train` would start them: its rules for these options
    Config(hidden_size=hidden, num_layers=layers, seed=seed).validate()
    if not 0 <= max_distance <= 100_000:
        raise UsageError("--max-distance must be between 0 and 100000")


def _load(path):
    from ..api import load
    model = load(path)
    model.require_left_to_right("follow the gradient of")    # L_t needs p(c_t | the text before)
    return model


def _distance_unit(vocabs, fresh):
    """What the distances count: "characters", or "tokens" for word models (a --cell network
    reads characters). Curves of both kinds would share an axis whose unit differs between
    them, so they are refused."""
    from ..errors import UsageError
    nouns = {vocab.noun for vocab in vocabs} | ({"character"} if fresh else set())
    if len(nouns) > 1:
        raise UsageError("a word model's distances count tokens and a character model's (or "
                         "--cell's) characters: give models of one kind, one plot each")
    return "tokens" if nouns == {"token"} else "characters"


def _model_curve(path, model, text, max_distance, err):
    from rich.markup import escape

    from ..views.gradients import mean_norms
    from ..views.text import text_pieces, unknown_tokens
    unknown = unknown_tokens(model, text)
    if unknown:
        err.print(f"[yellow]warning:[/] {len(unknown)} {model.vocab.noun}(s) not in "
                  f"{escape(path)}'s "
                  f"vocabulary, read as <UNK>: {escape(', '.join(map(repr, unknown[:20])))}")
    c = model.config
    norms, counts = mean_norms(model.network, text_pieces(model, text), max_distance)
    return _curve(path, c.cell, c.hidden_size, c.num_layers, False, norms, counts)


def _fresh_curve(cell, text, hidden, layers, seed, max_distance):
    from ..views.gradients import distance_norms, fresh_network
    from ..text.vocab import Vocab
    vocab = Vocab.from_text(text)
    network = fresh_network(cell, len(vocab), hidden, layers, seed)
    norms, counts = distance_norms(network, vocab.encode(text), max_distance)
    return _curve(f"{cell} {layers}x{hidden} untrained", cell, hidden, layers, True, norms, counts)


def _curve(label, cell, hidden, layers, fresh, norms, counts):
    return {"label": label, "cell": cell, "hidden_size": hidden, "num_layers": layers,
            "untrained": fresh, "norms": [None if math.isnan(v) else float(v) for v in norms],
            "counts": [int(n) for n in counts]}


def _plot(curves, console, unit):
    from ..views.plot import Line, even_ticks, line_plot, log_ticks
    lines, values = [], []
    for curve in curves:
        points = [(k, max(v, 1e-300)) for k, v in enumerate(curve["norms"]) if v is not None]
        lines.append(Line(curve["label"], [k for k, _ in points],
                          [math.log10(v) for _, v in points]))
        values += [v for _, v in points]
    width = min(console.width, 100)
    last = max(max(line.xs) for line in lines)
    return line_plot(lines, width, 18, colour=in_colour(console),
                     title="||dL_t / dh_(t-k)||, mean over t (log scale)",
                     xlabel=f"distance k ({unit})", xticks=even_ticks(last),
                     yticks=log_ticks(min(values), max(values)))


def _table(curves, max_distance):
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text
    shown = [k for k in SHOWN_DISTANCES if k <= max_distance]
    table = Table()
    table.add_column("curve")
    table.add_column("k = 0", justify="right")
    for k in shown:
        table.add_column(f"k = {k}", justify="right")
    for curve in curves:
        norms = curve["norms"]
        cells = [_ratio(norms[k], norms[0]) for k in shown]
        table.add_row(Text(curve["label"]), f"{norms[0]:.3g}", *cells)   # a path: no markup
    return Group(table, Text("k = 0: the mean norm; k > 0: the norm relative to k = 0",
                             style="dim"))


def _ratio(value, first):
    return "-" if value is None else f"{value / first:.2g}" if first else "0"
