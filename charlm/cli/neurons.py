"""``charlm neurons``: what the units of a trained model track in a text (see
:mod:`charlm.views.neurons`)."""
import click

from .common import (compile_notice, consoles, in_colour, model_option, print_json, refuse_given,
                     reports_errors)
from .textinput import read_text, text_options

EXAMPLES = """
\b
Examples:
  charlm neurons "Anna and Bob" --model names.npz            # the units that track features best
  charlm neurons --file input.txt --model shakespeare.npz --top 20
  charlm neurons --file input.txt --model shakespeare.npz --layer 1 --unit 37 --state c
  charlm neurons --file code.py --model code.npz --json | jq '.ranking[0]'
"""


@click.command(epilog=EXAMPLES)
@text_options
@model_option()
@click.option("--layer", type=int, metavar="L",
              help="Layer of --unit, from 0 (the input side); without --unit, rank only this "
                   "layer's units.  [default: the top layer; without --unit, every layer]")
@click.option("--unit", type=int, metavar="U", help="Colour the text by this unit (from 0).")
@click.option("--state", type=click.Choice(["h", "c"]),
              help="The unit's output h, or the LSTM's cell state c; without --unit, rank only "
                   "this state's units.  [default: h; without --unit, both]")
@click.option("--top", type=int, default=10, show_default=True, metavar="N",
              help="Rows of the ranking.")
@click.option("--per-feature", type=int, default=2, show_default=True, metavar="N",
              help="At most N rows of the ranking for any one feature (0: no limit).")
@click.option("--json", "as_json", is_flag=True,
              help='Print {"text", "tokens" (the text\'s characters, or a word model\'s tokens), '
                   '"layer", "unit", "state", "activations" (one per token), "correlations" (the '
                   'unit\'s, per feature), "ranking": [{"layer", "unit", "state", "feature", '
                   '"correlation"}, ...]}.')
@reports_errors
def neurons(text, file_path, chars, encoding, model_path, layer, unit, state, top, per_feature,
            as_json):
    """The activation of the model's units along a text, and the units that track simple
    features of it (inside quotes, bracket and parenthesis depth, position in the line, start of
    a word, vowels, ...; for a word model, features of its tokens), ranked by the Pearson
    correlation of activation and feature.

    With --unit, the text coloured by that unit's activation after each character (a word
    model: each token; blue negative, red positive); without, the ranking over every layer and
    state, and the text coloured by the best unit.
    """
    from ..api import load
    from ..errors import UsageError
    from ..views import neurons as views
    from ..text.vocab import require_unicode
    if unit is not None and not as_json:        # the ranking is shown without --unit, or in JSON
        refuse_given(["top", "per_feature"], "the ranking: without --unit, or with --json")
    text, truncated = read_text(text, file_path, chars, encoding)
    require_unicode(text)
    if top < 1:
        raise UsageError("--top must be >= 1")
    if per_feature < 0:
        raise UsageError("--per-feature must be >= 0 (0: no limit)")
    model = load(model_path)
    if truncated:
        text = model.vocab.whole_tokens(text)
    _check_unit(model, layer, unit, state)
    chosen = unit is not None
    only = {} if chosen else {"layer": layer, "state": state}    # what the ranking covers
    if chosen:
        layer = model.config.num_layers - 1 if layer is None else layer
        state = state or "h"
    out, err = consoles()
    _warn(err, model, text, file_path if truncated and not as_json else None)
    with compile_notice(enabled=not as_json):
        acts = views.activations(model, text)
    tokens = model.vocab.split(text)
    feats = views.features(tokens, model.vocab.kind)
    ranking = views.rank_units(acts, feats, top=top, per_feature=per_feature or None, **only)
    if not chosen:
        if not ranking:
            raise UsageError("no unit or feature varies along this text: give a longer one")
        best = ranking[0]
        layer, unit, state = best["layer"], best["unit"], best["state"]
    values = acts[layer, views.STATE_NAMES.index(state), :, unit]
    correlations = views.correlations(values, feats)
    if as_json:
        print_json({"text": text, "tokens": tokens, "layer": layer, "unit": unit, "state": state,
                    "activations": [float(v) for v in values], "correlations": correlations,
                    "ranking": ranking})
        return
    if not chosen:
        out.print(_ranking_table(ranking, model))
    _print_unit(out, tokens, model.vocab.noun, values, layer, unit, state, correlations)


def _check_unit(model, layer, unit, state):
    """--layer, --unit and --state, each where given, against the model."""
    from ..errors import UsageError
    c = model.config
    if layer is not None and not 0 <= layer < c.num_layers:
        raise UsageError(f"--layer must be between 0 and {c.num_layers - 1} for this "
                         f"{c.num_layers}-layer model")
    if unit is not None and not 0 <= unit < c.hidden_size:
        raise UsageError(f"--unit must be between 0 and {c.hidden_size - 1} for this model of "
                         f"{c.hidden_size} units per layer")
    if state is not None and state not in model.network.cell.states:
        raise UsageError(f"--state {state}: a {c.cell} has only "
                         f"{', '.join(model.network.cell.states)} (c is the LSTM's cell state)")


def _warn(err, model, text, truncated_file):
    from rich.markup import escape
    if truncated_file is not None:
        err.print(f"[dim]reading the first {len(text):,} characters of {escape(truncated_file)} "
                  "(--chars)[/]")
    from ..views.text import unknown_tokens
    unknown = unknown_tokens(model, text)
    if unknown:
        err.print(f"[yellow]warning:[/] {len(unknown)} {model.vocab.noun}(s) not in the model's "
                  f"vocabulary, read as <UNK>: {escape(', '.join(map(repr, unknown[:20])))}")
    if model.config.bidirectional:
        err.print("[dim]a bidirectional model: these are the units of its left-to-right stack, "
                  "which read the text from its start[/]")


def _ranking_table(ranking, model):
    from rich.table import Table
    c = model.config
    table = Table(title=f"units that track a feature ({c.cell} {c.num_layers}x{c.hidden_size})",
                  title_justify="left")
    for name, justify in (("layer", "right"), ("unit", "right"), ("state", "left"),
                          ("feature", "left"), ("correlation", "right")):
        table.add_column(name, justify=justify)
    for row in ranking:
        r = row["correlation"]
        table.add_row(str(row["layer"]), str(row["unit"]), row["state"], row["feature"],
                      f"[{'red' if r > 0 else 'blue'}]{r:+.3f}[/]")
    return table


def _print_unit(out, tokens, noun, values, layer, unit, state, correlations):
    import numpy as np

    from ..views import neurons as views
    scale = 1.0 if state == "h" else float(np.abs(values).max()) or 1.0
    known = {k: r for k, r in correlations.items() if r is not None}
    best = max(known, key=lambda k: abs(known[k]), default=None)
    tracks = f": tracks [bold]{best}[/] (r = {known[best]:+.3f})" if best else ""
    out.print(f"layer {layer}, unit {unit}, state {state}{tracks}")
    if in_colour(out):
        out.print(views.coloured_text(tokens, values, scale))
        out.print(views.legend(scale))
        return
    # no colour in a file: each token with the unit's activation after it, one per line
    from .score import plain_token
    lines = [f"position, {noun}, activation"]
    lines += [f"{k:>6}  {plain_token(token):<2} {value:+.4f}"
              for k, (token, value) in enumerate(zip(tokens, values))]
    out.print("\n".join(lines), markup=False)
