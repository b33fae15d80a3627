"""``charlm classify``: the most probable label of each text under a model trained with labels, and
every label's posterior (see :mod:`charlm.scoring.classify`)."""
import click

from .common import (compile_notice, consoles, model_option, print_json, refuse_given,
                     reports_errors)

EXAMPLES = """
\b
Examples:
  charlm train corpus.tsv --labels --out labelled.npz   # LABEL<TAB>TEXT lines
  charlm classify "a text" "another" --model labelled.npz
  charlm classify --file texts.txt --json --model labelled.npz   # one text per line
  charlm classify --eval held-out.tsv --model labelled.npz       # accuracy and confusion matrix
"""


@click.command(epilog=EXAMPLES)
@click.argument("texts", nargs=-1, metavar="[TEXT]...")
@model_option()
@click.option("--file", "file_path", default=None, metavar="PATH",
              help="Classify every non-blank line of PATH (one text per line), with a progress "
                   "bar on a terminal.")
@click.option("--eval", "eval_path", default=None, metavar="PATH",
              help="PATH holds LABEL<TAB>TEXT lines: classify each text and report the accuracy, "
                   "the confusion matrix and the majority-label baseline beside it.")
@click.option("--encoding", default="utf-8", show_default=True, metavar="NAME",
              help="Encoding of --file and --eval.")
@click.option("--json", "as_json", is_flag=True,
              help='Print {"results": [{"text", "label", "posterior": {label: p}}]}, with '
                   '--eval also "true" in each result and "examples", "accuracy", "confusion", '
                   '"majority".')
@reports_errors
def classify(texts, model_path, file_path, eval_path, encoding, as_json):
    """The most probable label of each TEXT, and the posterior P(label | text) of every label: by
    Bayes' rule from P(text | label), which the model gives, and the labels' training counts as
    the prior. Needs a model trained with --labels or --label NAME=FILE (docs/labels.md)."""
    from ..api import load
    from ..errors import CorpusError, UsageError
    from ..scoring import classify as classifier
    from ..text.labels import require_labels
    from ..text.textfile import read_text
    from .warmup import warm_up_forward
    if not texts and file_path is None and eval_path is None:
        raise UsageError("nothing to classify: give TEXT arguments, --file PATH or --eval PATH "
                         "(see charlm classify --help)")
    if eval_path is not None and (texts or file_path is not None):
        # --eval's table has a true label in every row: texts without one cannot share it
        others = " or ".join(name for name, given in (("--file", file_path is not None),
                                                      ("TEXT arguments", bool(texts))) if given)
        raise UsageError(f"--eval classifies the LABEL<TAB>TEXT lines of its file: give it "
                         f"without {others}")
    if file_path is None and eval_path is None:
        refuse_given(["encoding"], "--file PATH and --eval PATH")
    model = load(model_path)
    model.require_left_to_right("classify with")
    require_labels(model, "classify")
    all_texts = list(texts)
    if file_path is not None:
        lines = [line for line in read_text(file_path, encoding).split("\n") if line.strip()]
        if not lines:       # as score --file refuses a file with nothing to score
            raise CorpusError(f"{file_path} is empty: there is nothing to classify")
        all_texts += lines
    out, err = consoles()
    with compile_notice():
        warm_up_forward(model.network)
    with _bar(err, file_path is not None or eval_path is not None) as progress:
        if eval_path is not None:
            results, figures = classifier.evaluate(model, eval_path, encoding, progress)
        else:
            results, figures = classifier.classify(model, all_texts, progress), None
    if as_json:
        data = {"results": [r.to_json() for r in results]}
        if figures is not None:
            data.update(figures)
        print_json(data)
        return
    out.print(_table(results, model.config.labels))
    if figures is not None:
        out.print(_figures(figures))


class _bar:
    """A rich progress bar on stderr over the texts classified, on a terminal only."""

    def __init__(self, err, wanted):
        self.progress = None
        if wanted and err.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
            self.progress = Progress("classifying", BarColumn(), MofNCompleteColumn(),
                                     TimeRemainingColumn(), console=err, transient=True)

    def __enter__(self):
        if self.progress is None:
            return None
        self.progress.start()
        task = self.progress.add_task("classify", total=None)
        return lambda done, total: self.progress.update(task, completed=done, total=total)

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.stop()
        return False


def _table(results, names):
    from rich.table import Table
    from rich.text import Text
    shown = names if len(names) <= 6 else None
    table = Table(title="P(label | text)" + ("" if shown else ": the most probable label's"),
                  title_justify="left")
    table.add_column("text", overflow="fold", min_width=12, max_width=40)
    if any(r.true is not None for r in results):
        table.add_column("true")
    table.add_column("label")
    for name in shown or ["P"]:
        table.add_column(Text(name), justify="right", no_wrap=True)
    for r in results:
        row = [Text(r.text if len(r.text) <= 40 else r.text[:39] + "…")]
        if r.true is not None:
            row.append(Text(r.true))
        row.append(Text(r.label, style="bold" if r.true in (None, r.label) else "bold red"))
        row += [f"{r.posterior[n]:.3f}" for n in (shown or [r.label])]
        table.add_row(*row)
    return table


def _figures(figures):
    from rich.table import Table
    from rich.text import Text
    names = figures["confusion"]["labels"]      # the user's label names: text, never markup
    majority = figures["majority"]
    title = (f"accuracy {figures['accuracy']:.1%} on {figures['examples']:,} examples; majority "
             f"baseline (always {majority['label']!r}) {majority['accuracy']:.1%}")
    table = Table("true \\ predicted", title=Text(title), title_justify="left")
    for name in names:
        table.add_column(Text(name))
    for name, row in zip(names, figures["confusion"]["matrix"]):
        table.add_row(Text(name), *map(str, row))
    return table
