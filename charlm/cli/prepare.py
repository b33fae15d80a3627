"""``charlm prepare``: read a corpus once into a memory-mappable file of token ids
(see :mod:`charlm.text.prepared`)."""
import click

from ..config import MODES, TOKENS

from .common import consoles, print_json, reports_errors

EXAMPLES = """
\b
Examples:
  charlm prepare wiki.txt                  # writes wiki.txt.charlm/ beside it
  charlm prepare logs.txt --mode lines     # also index the lines (one example per line)
  charlm prepare wiki.txt --tokens words   # also cut it into words, for train --tokens words
  charlm prepare wiki.txt --json | jq .tokens
  charlm train wiki.txt --max-time 2h      # then reads the prepared ids, not the text
"""


@click.command(epilog=EXAMPLES)
@click.argument("corpus", type=click.Path(dir_okay=True))
@click.option("--encoding", default="utf-8", show_default=True, metavar="NAME",
              help="Encoding of the corpus (e.g. latin-1).")
@click.option("--mode", type=click.Choice(list(MODES)), default="auto",
              show_default=True,
              help="lines (or auto, for a text that reads as lines) also indexes its lines.")
@click.option("--tokens", type=click.Choice(list(TOKENS)), default="chars",
              show_default=True,
              help="words: also cut the text into word tokens, as train --tokens words reads it "
                   "(docs/words.md); the figures printed are then of the words.")
@click.option("--force", is_flag=True, help="Prepare again even if the prepared copy is current.")
@click.option("--json", "as_json", is_flag=True,
              help='Print {"tokens", "vocab_size", "path", "dtype", "mode", "lines", "built", '
                   '"seconds", "mb_per_sec"}; with --tokens words, "distinct_tokens" too.')
@reports_errors
def prepare(corpus, encoding, mode, tokens, force, as_json):
    """Read CORPUS once, in chunks, and write its token ids as a memory-mappable file with a small
    JSON description, in CORPUS.charlm/ beside it (or in the cache folder where that cannot be
    written). charlm train then reads the ids instead of the text, so its memory does not grow
    with the corpus; it prepares a corpus over 64 MB by itself, and prepares again a corpus that
    has changed (size or modification time) since. --tokens words also writes the text's word
    tokens, which train --tokens words reads (a run writes them itself the first time it needs
    them)."""
    import os
    import time

    from ..text import prepared
    out, err = consoles()
    started = time.perf_counter()
    # a bar only on a terminal: in a file, its frames would be noise (docs/files.md)
    with PreparingBar(err, f"preparing {corpus}", enabled=not as_json and err.is_terminal) as bar:
        corpus_ids, built = prepared.prepare_corpus(corpus, encoding, mode, force, progress=bar.update)
        if tokens == "words":
            built = prepared.prepare_words(corpus_ids, mode, bar.update) or built
    seconds = time.perf_counter() - started
    meta = corpus_ids.meta
    size = meta["source"]["size"]
    mode = corpus_ids.detect_mode()[0] if mode == "auto" else mode
    summary = {"tokens": corpus_ids.chars, "vocab_size": len(corpus_ids.vocab(1, mode)),
               "path": corpus_ids.ids_path, "dtype": meta["dtype"], "mode": mode,
               "lines": meta["line_index"], "built": built, "seconds": round(seconds, 3),
               "mb_per_sec": round(size / 1e6 / seconds, 1) if built and seconds > 0 else None}
    if tokens == "words":     # the vocabulary is counted on a run's training part, when it starts
        entry = meta["words"]
        summary.update(tokens=entry["tokens"], vocab_size=None, distinct_tokens=entry["types"],
                       path=os.path.join(corpus_ids.folder, "words.bin"), dtype=entry["dtype"],
                       lines=entry["line_index"])
    if as_json:
        print_json(summary)
        return
    what = (f"{summary['tokens']:,} word tokens, {summary['distinct_tokens']:,} distinct"
            if tokens == "words" else
            f"{summary['tokens']:,} characters, {summary['vocab_size']} tokens")
    what += f" ({summary['dtype']}), {summary['mode']} mode"
    from rich.markup import escape
    folder = escape(corpus_ids.folder)
    if built:
        out.print(f"[green]Prepared {escape(corpus)}[/]: {what}, in {seconds:.1f}s "
                  f"({summary['mb_per_sec']:,} MB/s) -> [bold]{folder}[/]")
    else:
        out.print(f"{escape(corpus)} is already prepared: {what} in [bold]{folder}[/] "
                  "(--force to prepare it again)")


class PreparingBar:
    """A rich progress bar over the bytes of a corpus being prepared, on stderr, shown from the
    first update on (a current prepared copy shows none)."""

    def __init__(self, console, description, enabled=True):
        self.console, self.description, self.enabled = console, description, enabled
        self.progress = None

    def __enter__(self):
        return self

    def update(self, done, total):
        if not self.enabled:
            return
        if self.progress is None:
            from rich.progress import (BarColumn, DownloadColumn, Progress, TimeRemainingColumn,
                TransferSpeedColumn)
            self.progress = Progress("{task.description}", BarColumn(), DownloadColumn(),
                                     TransferSpeedColumn(), TimeRemainingColumn(),
                                     console=self.console, transient=True)
            self.task = self.progress.add_task(self.description, total=total)
            self.progress.start()
        self.progress.update(self.task, completed=done, total=total)

    def close(self):
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def __exit__(self, *exc):
        self.close()
        return False
