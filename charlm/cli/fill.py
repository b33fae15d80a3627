"""``charlm fill``: fill in missing characters, or a word model's missing words (see
:mod:`charlm.scoring.fill`)."""
import click

from .common import MODEL_HELP, compile_notice, consoles, model_option, print_json, reports_errors

EXAMPLES = """
\b
Examples:
  charlm fill "Em_a" "_ophia"                # the most probable letter for each blank
  charlm fill "T_ be, or n_t t_ be" --model shakespeare.npz --top 3
  charlm fill "Em?a" --blank "?"             # another mark for the blanks
  charlm fill "Em_a" --left-only             # the text before the blank alone, for comparison
  charlm fill "To be, or ___ to be" --model words.npz   # a word model: ___ is a whole word
  charlm fill --json "An_a" | jq '.results[0].blanks[0].top'
"""


@click.command(epilog=EXAMPLES)
@click.argument("texts", nargs=-1, metavar="TEXT...")
@model_option(MODEL_HELP + " A bidirectional one (train --bidirectional) or a left-to-right one.")
@click.option("--blank", default="_", show_default=True, metavar="CHAR",
              help="The character that marks a missing one (for a word model, a run of it marks "
                   "a missing word).")
@click.option("--top", type=int, default=3, show_default=True, metavar="K",
              help="Alternatives to show for each blank, with their probabilities.")
@click.option("--left-only", is_flag=True,
              help="Left-to-right model: use only the text before each blank (the next-token "
                   "prediction), instead of rescoring the whole text for each candidate.")
@click.option("--json", "as_json", is_flag=True,
              help='Print {"results": [{"input", "text", "blanks": [{"position", "char", "prob", '
                   '"top": [[char, prob], ...]}], "unknown"}]}; a word model\'s blanks name '
                   '"word" where a character model\'s name "char".')
@reports_errors
def fill(texts, model_path, blank, top, left_only, as_json):
    """Replace every blank (_) in each TEXT by the most probable character, or for a word model
    (train --tokens words) every run of blanks (___) by the most probable word. Blanks are filled
    from left to right, each one then read as part of the text. A bidirectional model reads the
    text on both sides of a blank in one pass; a left-to-right model scores each candidate by the
    probability of the whole text with it in place (as far as the next blank), one forward pass
    per candidate (for a word model, its likeliest words). Positions count characters of TEXT from
    0."""
    from rich.markup import escape

    from ..api import load
    from .warmup import warm_up_forward
    from ..errors import UsageError
    from ..scoring.fill import check_options
    from ..text.vocab import visible
    if not texts:
        raise UsageError("nothing to fill: give one or more TEXT arguments with blanks, e.g. "
                         'charlm fill "Em_a"')
    model = load(model_path)
    check_options(model, texts, blank, top, left_only)
    with compile_notice():
        network = model.network
        warm_up_forward(network.stacks()[0] if model.config.bidirectional else network)
    results = model.fill(list(texts), blank=blank, top=top, left_only=left_only)
    if as_json:
        print_json({"results": [r.to_json() for r in results]})
        return
    out, err = consoles()
    for r in results:
        if r.unknown:
            chars = ", ".join(repr(c) for c in r.unknown)
            err.print(f"[yellow]warning:[/] {escape(chars)} not in the model's vocabulary, "
                      "read as <UNK>")
        out.print(_highlighted(r))
        for b in r.blanks:
            alternatives = "  ".join(f"{visible(c)} {p:.1%}" for c, p in b.top)
            out.print(f"  [dim]{b.position:>4}:[/] {escape(alternatives)}", highlight=False)


def _highlighted(result):
    """The filled text with each fill in bold green."""
    from rich.text import Text
    text = Text(result.text)
    for start, end in result.spans:
        text.stylize("bold green", start, end)
    return text
