"""``charlm score``: how probable a text is under a model (see :mod:`charlm.scoring.scorer`)."""
import math

import click

from .common import (compile_notice, consoles, in_colour, model_option, print_json, refuse_given,
                     reports_errors)
from ..scoring.options import DEFAULT_WINDOWS, Settings

EXAMPLES = """
\b
Examples:
  charlm score "Anna" "Xqzt"                 # log-probability, bits/char, perplexity of each
  charlm score --per-char "Anna"             # each character shaded by its surprise
  charlm score --model shakespeare.npz --file test.txt      # a test-set evaluation
  charlm score --json "Anna" | jq '.results[0].bits_per_char'
  charlm score --model shakespeare.npz --file test.txt --dynamic   # adapting as it reads
  charlm score --model shakespeare.npz --file test.txt --windows 256   # nanoGPT's protocol
  charlm score "a text" --label poetry --model labelled.npz   # log P(text | label)
"""

_DYNAMIC = Settings()    # dynamic evaluation's defaults, shown in --help

# Surprise -log2 p of a character, in bits: the upper bounds of the shades of the colour map.
SHADES = [(1.0, "black on green3"), (2.0, "black on yellow3"), (4.0, "black on dark_orange"),
          (8.0, "white on red3"), (math.inf, "white on magenta")]


@click.command(epilog=EXAMPLES)
@click.argument("texts", nargs=-1, metavar="[TEXT]...")
@model_option()
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
                   "characters before it. A lines-mode model's lines are always scored exactly.")
@click.option("--dynamic", is_flag=True,
              help="--file: dynamic evaluation: score the file in segments, each with the weights "
                   "as they are, then take a gradient step on it (docs/dynamic-evaluation.md).")
@click.option("--dynamic-lr", type=float, default=None, metavar="F",
              help=f"--dynamic: learning rate of the RMS-scaled steps  [default: {_DYNAMIC.lr:g}]")
@click.option("--dynamic-segment", type=int, default=None, metavar="N",
              help=f"--dynamic: tokens scored, then learnt from, at a time  "
                   f"[default: {_DYNAMIC.segment}]")
@click.option("--dynamic-decay", type=float, default=None, metavar="F",
              help=f"--dynamic: pull toward the trained weights after each step, "
                   f"w += F (w_trained - w)  [default: {_DYNAMIC.decay:g}]")
@click.option("--windows", type=int, default=None, metavar="N",
              help="--file: also nanoGPT's figure (windowed_loss): the mean loss over random "
                   "windows of N targets, each read from the zero state.")
@click.option("--num-windows", type=int, default=DEFAULT_WINDOWS, show_default=True,
              metavar="K", help="--windows: how many windows (at most the text's starting "
                                "positions).")
@click.option("--seed", type=int, default=0, show_default=True, metavar="S",
              help="--windows: seed of the windows' starting positions.")
@click.option("--label", default=None, metavar="NAME",
              help="TEXT arguments: log P(text | label), for a model trained with labels "
                   "(docs/labels.md).")
@reports_errors
def score(texts, model_path, file_path, per_char, as_json, encoding, exact, dynamic, dynamic_lr,
          dynamic_segment, dynamic_decay, windows, num_windows, seed, label):
    """Log-probability of each TEXT under the model: in nats and bits, as a probability, in bits
    per character and as perplexity. The model starts from its zero state and predicts every
    character; in lines mode it also predicts the end of the line (<EOS>), which counts as one
    more character. Characters not in the model's vocabulary count as <UNK> and are named."""
    from rich.markup import escape

    from ..scoring import scorer
    from ..api import load
    from .warmup import warm_up_forward
    from ..errors import UsageError
    if (dynamic or windows is not None) and file_path is None:
        raise UsageError(f"{'--dynamic' if dynamic else '--windows'} applies to --file PATH "
                         "(see charlm score --help)")
    if not texts and file_path is None:
        raise UsageError("nothing to score: give one or more TEXT arguments or --file PATH "
                         "(see charlm score --help)")
    if per_char and not texts:
        raise UsageError("--per-char applies to TEXT arguments, not to --file")
    if label is not None and file_path is not None:
        raise UsageError("--label applies to TEXT arguments, not to --file")
    if file_path is None:
        refuse_given(["encoding", "exact"], "--file PATH")
    if windows is None:
        refuse_given(["num_windows", "seed"], "--windows N")
    adapting = _dynamic_settings(dynamic, dynamic_lr, dynamic_segment, dynamic_decay)
    model = load(model_path)
    model.require_left_to_right("score with")
    scorer.check_figures(model, adapting, windows, num_windows, seed, exact)
    out, err = consoles()
    with compile_notice():
        warm_up_forward(model.network)
        if adapting is not None:
            from ..scoring.dynamic import warm_up
            warm_up(model.network)
    if label is not None:
        from ..scoring.classify import score_given
        results = score_given(model, list(texts), label, per_char)
    else:
        results = scorer.score(model, list(texts), per_char=per_char) if texts else []
    if file_path is not None:
        results.append(_score_file(model, file_path, encoding, exact, err, dynamic=adapting,
                                   windows=windows, num_windows=num_windows, seed=seed))
    if as_json:
        print_json({"results": [r.to_json() for r in results]})
        return
    for r in results:
        if r.unknown:
            chars = ", ".join(repr(c) for c in r.unknown[:20]) + (" ..." if len(r.unknown) > 20 else "")
            where = r.file if r.file is not None else repr(_shorten(r.text, 30))
            kind = "word token(s)" if model.vocab.kind == "words" else "character(s)"
            err.print(f"[yellow]warning:[/] {len(r.unknown)} {kind} of {escape(where)} not "
                      f"in the model's vocabulary, scored as <UNK>: {escape(chars)}")
    out.print(_fitted(out, _table(results, model)))
    if per_char and in_colour(out):
        for r in results[:len(texts)]:
            out.print(_surprise_map(r))
        out.print(_legend())
    elif per_char:      # no colour in a file: each character with its figures, one per line
        for r in results[:len(texts)]:
            out.print(_surprise_lines(r), markup=False)


def _dynamic_settings(dynamic, lr, segment, decay):
    """The dynamic evaluation settings the options ask for, or None without --dynamic."""
    from ..errors import UsageError
    given = {k: v for k, v in (("lr", lr), ("segment", segment), ("decay", decay)) if v is not None}
    if not dynamic:
        if given:
            raise UsageError(f"--dynamic-{next(iter(given))} applies with --dynamic")
        return None
    return Settings(**given)


def _score_file(model, path, encoding, exact, err, **figures):
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn
    from ..scoring import scorer
    if not err.is_terminal:
        return scorer.score_file(model, path, encoding=encoding, exact=exact, **figures)
    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                  TimeRemainingColumn(), console=err, transient=True) as bar:
        task = bar.add_task(f"scoring {path}", total=None)
        return scorer.score_file(model, path, encoding=encoding, exact=exact,
                                 progress=lambda done, total: bar.update(task, completed=done,
                                                                         total=total), **figures)


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
    table.add_column("text", overflow="fold", min_width=8, max_width=40)
    for name in ("log P (nats)", "log2 P", "probability", "bits/char", "perplexity"):
        table.add_column(name, justify="right", no_wrap=True)
    for r in results:
        table.add_row(Text(r.file if r.file is not None else _shorten(r.text, 40)),
                      f"{r.log_prob:.3f}", f"{r.log2_prob:.3f}", _probability(r.log_prob),
                      f"{r.bits_per_char:.3f}", f"{r.perplexity:.2f}")
        if r.file is not None:
            how = "" if r.burn_in is None else (
                ", one sequential pass" if r.burn_in == 0 else
                f", in segments warmed on {r.burn_in} "
                f"{'word tokens' if model.vocab.kind == 'words' else 'characters'} each "
                "(--exact: sequential)")
            if r.dynamic is not None:
                d = r.dynamic
                how += (f"; dynamic evaluation: {d['segments']:,} segments of {d['segment']} "
                        f"tokens, lr {d['lr']:g}, decay {d['decay']:g}")
            if r.windowed is not None:
                w = r.windowed
                how += (f"\nwindowed (nanoGPT's protocol): {w.loss:.4f} nats/token "
                        f"({w.bits_per_char:.4f} bits) over {w.count:,} windows of {w.length} "
                        f"targets, each from the zero state (seed {w.seed})")
            table.caption = Text(f"{r.file}: {r.num_tokens:,} tokens{how}")
    return table


def _fitted(console, table):
    """The table, or where the console is too narrow for its figures, each row as a block of
    "column: value" lines (a table squeezed below its width cuts the figures short)."""
    from rich.console import Group
    from rich.measure import Measurement
    from rich.text import Text
    text_column = table.columns[0]
    widest = text_column.max_width
    text_column.max_width = text_column.min_width       # the text folds; the figures cannot
    needed = Measurement.get(console, console.options.update_width(10**4), table).maximum
    text_column.max_width = widest
    if needed <= console.width:
        return table
    names = [str(column.header) for column in table.columns]
    rows = zip(*(list(column.cells) for column in table.columns))
    blocks = [Text(f"{names[0]}: ") + Text(str(row[0]), style="bold") + Text("".join(
        f"\n  {name}: {value}" for name, value in zip(names[1:], row[1:]))) for row in rows]
    return Group(*[table.title or ""], *blocks, *([table.caption] if table.caption else []))


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


PLAIN_WHITESPACE = {" ": "␣", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def plain_token(token):
    """A token (a character, a word model's token, <EOS>) as a line of plain text shows it: each
    space, newline, tab and carriage return named."""
    return "".join(PLAIN_WHITESPACE.get(ch, ch) for ch in token)


def _surprise_lines(result):
    """--per-char when stdout is not a terminal: a line per character (its position, the
    character, its surprise -log2 p in bits and log p in nats) under a header naming the text."""
    lines = [f"per character of {_shorten(result.text, 40)!r}: position, character, "
             "surprise -log2 p (bits), log p (nats)"]
    for k, (char, log_prob) in enumerate(result.per_char):
        lines.append(f"{k:>6}  {plain_token(char):<5} {-log_prob / math.log(2.0):8.3f} "
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
