"""``charlm score``: how probable a text is under a model (see :mod:`charlm.scoring.scorer`)."""
import math

import click

from .common import MODEL_HELP, compile_notice, consoles, print_json, reports_errors

EXAMPLES = """
\b
Examples:
  charlm score "Anna" "Xqzt"                 # log-probability, bits/char, perplexity of each
  charlm score --per-char "Anna"             # each character shaded by its surprise
  charlm score --model shakespeare.npz --file test.txt      # a test-set evaluation
  charlm score --json "Anna" | jq '.results[0].bits_per_char'
"""

# Surprise -log2 p of a character, in bits: the upper bounds of the shades of the colour map.
SHADES = [(1.0, "black on green3"), (2.0, "black on yellow3"), (4.0, "black on dark_orange"),
          (8.0, "white on red3"), (math.inf, "white on magenta")]


@click.command(epilog=EXAMPLES)
@click.argument("texts", nargs=-1, metavar="[TEXT]...")
@click.option("--model", "model_path", default="charlm.npz", show_default=True, metavar="PATH",
              help=MODEL_HELP)
@click.option("--file", "file_path", default=None, metavar="PATH",
              help="Score a whole file as well (one figure for all of it: bits/char on a test "
                   "set). Read in chunks; lines mode scores each non-blank line as an example.")
@click.option("--per-char", is_flag=True,
              help="Show each character's probability: a colour map of its surprise (-log2 p) "
                   "in the terminal, the per-character log-probs in JSON. TEXT arguments only.")
@click.option("--json", "as_json", is_flag=True,
              help='Print {"results": [{"text", "log_prob", "log2_prob", "probability", '
                   '"bits_per_char", "perplexity", "num_tokens", "unknown", ...}]}.')
@click.option("--encoding", default="utf-8", show_default=True, metavar="NAME",
              help="Encoding of --file (e.g. latin-1).")
@click.option("--exact", is_flag=True,
              help="Stream-mode --file: one sequential pass, exactly the definition (slow). "
                   "By default the file is scored in parallel segments, each warmed up on the "
                   "characters before it.")
@reports_errors
def score(texts, model_path, file_path, per_char, as_json, encoding, exact):
    """Log-probability of each TEXT under the model: in nats and bits, as a probability, in bits
    per character and as perplexity. The model starts from its zero state and predicts every
    character; in lines mode it also predicts the end of the line (<EOS>), which counts as one
    more character. Characters not in the model's vocabulary count as <UNK> and are named."""
    from rich.markup import escape

    from ..scoring import scorer
    from ..api import load
    from .warmup import warm_up_forward
    from ..errors import UsageError
    if not texts and file_path is None:
        raise UsageError("nothing to score: give one or more TEXT arguments or --file PATH "
                         "(see charlm score --help)")
    if per_char and not texts:
        raise UsageError("--per-char applies to TEXT arguments, not to --file")
    model = load(model_path)
    model.require_left_to_right("score with")
    out, err = consoles()
    with compile_notice():
        warm_up_forward(model.network)
    results = scorer.score(model, list(texts), per_char=per_char) if texts else []
    if file_path is not None:
        results.append(_score_file(model, file_path, encoding, exact, err))
    if as_json:
        print_json({"results": [r.to_json() for r in results]})
        return
    for r in results:
        if r.unknown:
            chars = ", ".join(repr(c) for c in r.unknown[:20]) + (" ..." if len(r.unknown) > 20 else "")
            where = r.file if r.file is not None else repr(_shorten(r.text, 30))
            err.print(f"[yellow]warning:[/] {len(r.unknown)} character(s) of {escape(where)} not "
                      f"in the model's vocabulary, scored as <UNK>: {escape(chars)}")
    out.print(_table(results, model))
    if per_char and out.is_terminal:
        for r in results[:len(texts)]:
            out.print(_surprise_map(r))
        out.print(_legend())
    elif per_char:      # no colour in a file: each character with its figures, one per line
        for r in results[:len(texts)]:
            out.print(_surprise_lines(r), markup=False)


def _score_file(model, path, encoding, exact, err):
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn
    from ..scoring import scorer
    if not err.is_terminal:
        return scorer.score_file(model, path, encoding=encoding, exact=exact)
    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                  TimeRemainingColumn(), console=err, transient=True) as bar:
        task = bar.add_task(f"scoring {path}", total=None)
        return scorer.score_file(model, path, encoding=encoding, exact=exact,
                                 progress=lambda done, total: bar.update(task, completed=done,
                                                                         total=total))


def _shorten(text, width):
    text = text.replace("\n", "⏎")
    return text if len(text) <= width else text[:width - 1] + "…"


def _probability(log_prob):
    """P as a decimal, or as m·10^e when it is too small for a float (long texts)."""
    log10 = log_prob / math.log(10.0)
    if log10 > -300:
        return f"{math.exp(log_prob):.4g}"
    exponent = math.floor(log10)
    return f"{10 ** (log10 - exponent):.2f}e{exponent}"


def _table(results, model):
    from rich.table import Table
    from rich.text import Text
    c = model.config
    table = Table(title=f"{c.cell} {c.num_layers}x{c.hidden_size}, {c.mode} mode"
                        + (" (<EOS> counted as a character)" if c.mode == "lines" else ""),
                  title_justify="left", caption_justify="left")
    table.add_column("text", overflow="fold", min_width=12, max_width=40)
    for name in ("log P (nats)", "log2 P", "probability", "bits/char", "perplexity"):
        table.add_column(name, justify="right", no_wrap=True)
    for r in results:
        table.add_row(Text(r.file if r.file is not None else _shorten(r.text, 40)),
                      f"{r.log_prob:.3f}", f"{r.log2_prob:.3f}", _probability(r.log_prob),
                      f"{r.bits_per_char:.3f}", f"{r.perplexity:.2f}")
        if r.file is not None:
            how = "" if r.burn_in is None else (
                ", one sequential pass" if r.burn_in == 0 else
                f", in segments warmed on {r.burn_in} characters each (--exact: sequential)")
            table.caption = Text(f"{r.file}: {r.num_tokens:,} tokens{how}")
    return table


def _shade(bits):
    return next(style for bound, style in SHADES if bits < bound)


def _surprise_map(result):
    """The text with each character shaded by its surprise; newlines shown as ⏎, <EOS> as ∎."""
    from rich.text import Text
    text = Text()
    for char, log_prob in result.per_char:
        shown = {"\n": "⏎\n", "<EOS>": "∎"}.get(char, char)
        text.append(shown, style=_shade(-log_prob / math.log(2.0)))
    return text


def plain_char(char):
    """A character as a line of plain text shows it: whitespace named, <EOS> as itself."""
    return {" ": "␣", "\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(char, char)


def _surprise_lines(result):
    """--per-char when stdout is not a terminal: a line per character (its position, the
    character, its surprise -log2 p in bits and log p in nats) under a header naming the text."""
    lines = [f"per character of {_shorten(result.text, 40)!r}: position, character, "
             "surprise -log2 p (bits), log p (nats)"]
    for k, (char, log_prob) in enumerate(result.per_char):
        lines.append(f"{k:>6}  {plain_char(char):<5} {-log_prob / math.log(2.0):8.3f} "
                     f"{log_prob:9.4f}")
    return "\n".join(lines)


def _legend():
    from rich.text import Text
    legend = Text("surprise (-log2 p): ")
    lower = 0
    for bound, style in SHADES:
        label = f" <{bound:g} bits " if bound != math.inf else f" {lower:g}+ bits "
        legend.append(label, style=style)
        legend.append(" ")
        lower = bound
    legend.append("  ⏎ newline  ∎ <EOS>")
    return legend
