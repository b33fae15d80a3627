"""``charlm train``: the command line over :func:`charlm.training.trainer.new_trainer` and ``Trainer.run``."""
import functools
import math
import shlex
import sys
import time

import click

from ..network.celltypes import CELLS
from ..config import COLD_STARTS, EMA_DECAY, MODES, OPTIMIZERS, TOKENS, Config, recipe_text
from ..errors import UsageError
from ..training.reporter import Reporter
from .common import (DEFAULT_MODEL, compile_notice, consoles, in_colour, pipe_closed, print_json,
                     reports_errors, silence)

EXAMPLES = """
\b
Examples:
  charlm train                                  # the bundled names, about a minute
  charlm train input.txt --max-time 10m         # any UTF-8 text; stops after ten minutes
  charlm train code.py --cell gru --hidden 256 --layers 3 --out code.npz
  charlm train input.txt --out run.npz --resume --steps 5000   # continue a run to step 5000
  charlm train corpus.tsv --labels              # LABEL<TAB>TEXT lines, for --label and classify
  charlm train --label poetry=verse.txt --label prose=essay.txt   # each line of a file, its label
  charlm train input.txt --val-windows 256 --val-dynamic --json  # held-out text, two more figures
"""


def _default(setting):
    """The help's ``[default: ...]`` of a setting, read from Config so that the two never differ
    (tests/test_docs.py holds them together)."""
    value = getattr(Config, setting)
    return f"[default: {value:g}]" if isinstance(value, float) else f"[default: {value}]"


@click.command(epilog=EXAMPLES)
@click.argument("corpus", required=False, type=click.Path(dir_okay=True))
@click.option("--cell", type=click.Choice(list(CELLS)), help="Recurrent cell.  " + _default("cell"))
@click.option("--hidden", "hidden_size", type=int, help="Units per layer.  [default: sized to the corpus]")
@click.option("--layers", "num_layers", type=int, help="Stacked recurrent layers.  " + _default("num_layers"))
@click.option("--bidirectional", is_flag=True, default=None,
              help="Train a cloze model for `charlm fill`: each character predicted from the text "
                   "before it and after it (it cannot sample or score).")
@click.option("--seq-len", type=int, help="Time steps of truncated backpropagation.  [default: 50 in stream mode, 100 in lines mode or with --bidirectional]")
@click.option("--batch-size", type=int, help="Sequences per batch.  " + _default("batch_size"))
@click.option("--optimizer", type=click.Choice(list(OPTIMIZERS)), help=_default("optimizer"))
@click.option("--lr", type=float, help="Peak learning rate (cosine decay over --max-time, else 3% per epoch).  " + _default("lr"))
@click.option("--weight-decay", type=float, help="Decoupled weight decay of the weight matrices (AdamW), per unit of learning rate.  " + _default("weight_decay"))
@click.option("--beta2", type=float, help="Adam's decay rate of its squared-gradient average.  " + _default("beta2"))
@click.option("--ema-decay", type=float,
              help="Keep a moving average of the weights, this much of it kept at each step, in "
                   "[0, 1): validation reads it, and --out keeps the best; 0 for none.  "
                   f"[default: {EMA_DECAY:g} with a validation split, else 0]")
@click.option("--dropout", type=float, help="Dropout between layers, in [0, 1).  [default: sized to the corpus]")
@click.option("--locked-dropout/--no-locked-dropout", default=None,
              help="One --dropout mask per sequence for all its steps, instead of a new mask at "
                   "every step.  " + _default("locked_dropout"))
@click.option("--weight-drop", type=float, help="DropConnect on the recurrent weights: each step drops this share of them, in [0, 1).  [default: 0.2 for a model large for its corpus, else 0]")
@click.option("--cold-starts", type=float,
              help="Stream mode: the share of the training streams that restart from the zero "
                   "state at each batch, so the model also learns to read from a cold start (as "
                   "--windows and short texts are scored), in [0, 1].  "
                   f"[default: {COLD_STARTS:g} in stream mode]")
@click.option("--clip", type=float, help="Clip gradients to this global norm; 0 turns it off.  " + _default("clip"))
@click.option("--steps", type=int, help="Stop after this many optimizer steps in total (resumed ones included).")
@click.option("--epochs", type=float, help="Stop after this many passes over the training data.")
@click.option("--max-time", help="Stop within this wall time, validation included: 90s, 10m, 2h.")
@click.option("--val-frac", type=float, help="Fraction held out for validation; 0 for none.  " + _default("val_frac"))
@click.option("--val-max-chars", type=int,
              help="Validate on at most this many held-out characters (the first ones; tokens, "
                   "for a word model); 0 for all.  " + _default("val_max_chars"))
@click.option("--val-windows", type=int, metavar="N",
              help="After training, also score the held-out text on nanoGPT's protocol: 12,800 "
                   "windows of N targets from a cold start, as score --windows N (as long as "
                   "scoring 12,800 x N characters; not part of --max-time); 0 for none.  "
                   + _default("val_windows"))
@click.option("--val-dynamic/--no-val-dynamic", default=None,
              help="After training, also score the held-out text with dynamic evaluation, as "
                   "score --dynamic (not part of --max-time).  " + _default("val_dynamic"))
@click.option("--mode", type=click.Choice(list(MODES)),
              help="lines: one example per line; stream: one long text.  " + _default("mode"))
@click.option("--min-count", type=int,
              help="Characters (word tokens, with --tokens words) seen fewer times become <UNK>.  "
                   + _default("min_count"))
@click.option("--tokens", type=click.Choice(list(TOKENS)), help="chars: a character model; words: words, punctuation marks and runs of whitespace (docs/words.md).  " + _default("tokens"))
@click.option("--vocab-size", type=int, help="--tokens words: keep the N most frequent tokens, the rest read as <UNK>.  [default: those seen at least twice, at most 10,000]")
@click.option("--eval-every", type=int, help="Steps between validations.  [default: at every 5% of the budget, at most 10% of the time]")
@click.option("--patience", type=int, help="Stop after this many validations in a row without a new best; 0 never stops early.  " + _default("patience"))
@click.option("--checkpoint-every", type=int, help="Also save every N steps (always: at each validation and at the end).")
@click.option("--labels", "labelled", is_flag=True, default=None,
              help="CORPUS holds LABEL<TAB>TEXT lines: train a model of text given its label "
                   "(lines mode), for sample --label and classify (docs/labels.md).")
@click.option("--label", "label_files", multiple=True, metavar="NAME=FILE",
              help="Repeatable, instead of CORPUS: every non-blank line of FILE is an example "
                   "labelled NAME (lines mode; docs/labels.md).")
@click.option("--out", default=DEFAULT_MODEL, show_default=True, help="Checkpoint to write.")
@click.option("--resume", is_flag=True, help="Continue the run stored in --out.")
@click.option("--force", is_flag=True, help="Replace an existing --out.")
@click.option("--encoding", default="utf-8", show_default=True, help="Encoding of the corpus.")
@click.option("--seed", type=int, help="Random seed: same seed, same run.  " + _default("seed"))
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON summary at the end on stdout, no progress; the choices made "
                   "still go to stderr.")
@click.option("--quiet", is_flag=True, help="No progress display.")
@reports_errors
def train(corpus, out, resume, force, encoding, as_json, quiet, max_time, **options):
    """Train a character-level language model on CORPUS (default: the bundled names).

    Writes the best weights (by validation loss) and the latest training state to --out; Ctrl-C
    saves and stops, and --resume continues exactly where it stopped.

    Under an MPI launcher (mpiexec -n N charlm train ..., or srun) one run trains over the N
    processes: --batch-size is the global batch, rank 0 alone prints and writes --out.
    """
    from ..training import distributed
    from ..config import parse_duration
    if max_time is not None:
        options["max_time"] = parse_duration(max_time)
    from ..text.labels import labelled_option
    labelled = options.pop("labelled"), options.pop("label_files")
    if not distributed.launched():
        options["labelled"] = labelled_option(*labelled)
        return _train(None, corpus, out, resume, force, encoding, as_json, quiet, options)
    from ..network.parallel import blas_for
    group = distributed.join()
    # a rank of one thread calls BLAS outside parallel.fan_out: one BLAS thread, as a thread has
    with group.failing_together(), blas_for(group.threads):
        try:
            options["labelled"] = labelled_option(*labelled, distributed=True)
        except UsageError as e:         # every rank knows it: said once, by rank 0
            raise distributed.AgreedError(e, e.exit_code) from None
        _train(group, corpus, out, resume, force, encoding, as_json, quiet, options)


def _train(group, corpus, out, resume, force, encoding, as_json, quiet, options):
    """Train in this process, or as one rank of a data-parallel group."""
    from .warmup import warm_up_training
    from ..training.distributed import new_rank_trainer
    from ..training.trainer import new_trainer
    out_console, err_console = consoles()
    speaks = group is None or group.rank == 0
    # a progress bar only on a terminal: in a file, the lines of LogReporter; with --json the
    # choices made and what --resume ignored still go to stderr, the summary to stdout
    reporter = (Reporter() if not speaks else NoticeReporter(err_console) if quiet or as_json
                else ProgressReporter(err_console) if err_console.is_terminal
                else LogReporter(err_console))
    if group is None:
        trainer = new_trainer(corpus, out, resume, force, encoding, reporter, **options)
    else:
        trainer = new_rank_trainer(group, corpus, out, resume, force, encoding, reporter, **options)

    def warm_up():
        warm_up_training(trainer.config.cell, trainer.config.optimizer)

    with compile_notice(enabled=not as_json and speaks):
        if group is None:
            warm_up()
        else:       # compiled into the cache once, then loaded by the other ranks
            group.first_then_others(warm_up)
    reason = trainer.run()
    if getattr(reporter, "closed", False):
        pipe_closed()       # the run stopped and saved as for Ctrl-C; a closed pipe exits 0
    if not speaks:
        raise SystemExit(130 if reason == "interrupted" else 0)
    summary = summarize(trainer, reason)
    c = trainer.config
    if (c.val_windows or c.val_dynamic) and reason != "interrupted" and \
            not reason.startswith("already "):
        message = "Scoring the held-out text (--val-windows, --val-dynamic)"
        with compile_notice(message, delay=0.0, enabled=not (as_json or quiet)):
            summary.update(trainer.held_out_figures())
    if group is not None:
        summary["distributed"] = trainer.summary()
    if as_json:
        print_json(summary)
    else:
        _report_end(trainer, summary, reason, _corpus_args(corpus, options["labelled"], encoding),
                    out_console, quiet)
    if reason == "interrupted":
        raise SystemExit(130)


def summarize(trainer, reason):
    c, rs = trainer.config, trainer.run_state
    best = rs.best_val_loss
    return {
        "model": trainer.out, "stopped": reason, "steps": rs.step,
        "epochs": round(trainer.epochs_done, 3),
        "train_loss": rs.train_loss, "best_val_loss": best,
        "best_val_bpc": best / math.log(2) if best is not None else None,
        "best_step": rs.best_step,
        "chars_per_sec": rs.chars_seen * trainer.dataset.chars_per_token / max(trainer.elapsed, 1e-9),
        "tokens_per_sec": rs.chars_seen / max(trainer.elapsed, 1e-9),      # chars_seen counts tokens
        "clipped_steps": rs.clipped_steps, "elapsed": round(trainer.elapsed, 2),
        "tokens": c.tokens, "vocab_size": len(trainer.dataset.vocab),
        "config": {"cell": c.cell, "hidden_size": c.hidden_size, "num_layers": c.num_layers,
                   "bidirectional": c.bidirectional, "mode": c.mode, "dropout": c.dropout,
                   "locked_dropout": c.locked_dropout, "weight_drop": c.weight_drop,
                   "cold_starts": c.cold_starts, "ema_decay": c.ema_decay,
                   "batch_size": c.batch_size, "seq_len": c.seq_len,
                   "parameters": int(trainer.params.flat.size)},
    }


def _corpus_args(corpus, labelled, encoding):
    """The arguments that give a run its corpus again, as ``--resume`` needs it."""
    args = [corpus] if corpus else []
    if labelled is True:
        args.append("--labels")
    elif labelled:
        args += [a for name, path in labelled for a in ("--label", f"{name}={path}")]
    return args + (["--encoding", encoding] if encoding.lower() != "utf-8" else [])


def _report_end(trainer, summary, reason, corpus_args, console, quiet):
    from rich.markup import escape
    if reason.startswith("already "):
        console.print(_nothing_to_do(trainer, reason[len("already "):]), markup=False)
        return
    if reason == "interrupted":
        again = shlex.join(["charlm", "train", *corpus_args, "--out", trainer.out,
                            "--resume"])                    # quoted: it is pasted into a shell
        console.print(f"[yellow]Stopped at step {trainer.run_state.step}; saved to "
                      f"{escape(trainer.out)}.[/] Continue with: [bold]{escape(again)}[/]")
        return
    best = summary["best_val_loss"]
    val = (f", best validation loss {best:.4f} nats ({summary['best_val_bpc']:.3f} bits/char) "
           f"at step {summary['best_step']}" if best is not None else "")
    steps = summary["steps"]
    early = (f" (stopped early: no new best in {trainer.config.patience} validations; "
             "--patience to change)" if reason == "no improvement" else "")
    console.print(f"[green]Trained {steps} step{'s' * (steps != 1)} in {summary['elapsed']:.0f}s[/]{val}; "
                  f"saved to [bold]{escape(trainer.out)}[/].{early}")
    for key, what in (("val_windowed_loss", "on nanoGPT's windows (--val-windows)"),
                      ("val_dynamic_loss", "with dynamic evaluation (--val-dynamic)")):
        if key in summary:
            console.print(f"Held-out text {what}: {summary[key]:.4f} nats "
                          f"({summary[key] / math.log(2):.3f} bits/char)")
    if quiet:
        return
    from ..views import curves
    console.print(curves.render(trainer.run_state, width=min(console.width, 100),
                                colour=in_colour(console), kind=trainer.dataset.vocab.kind))
    if trainer.config.bidirectional:
        what, example = (("words", "The ___ sat") if trainer.config.tokens == "words" else
                         ("characters", "Th_ c_t"))
        console.print(f'[dim]Fill in missing {what} with:[/] charlm fill "{example}" --model '
                      f'{escape(shlex.quote(trainer.out))}')
        return
    from ..api import load
    model = load(trainer.out)
    lines = model.config.mode == "lines"
    if model.config.labels:      # one sample of each label (the first few), its label before it
        samples = [f"[{name}] " + model.sample(label=name, temperature=0.8)[0]
                   for name in model.config.labels[:8]]
    else:
        samples = model.sample(num=5 if lines else 1, length=None if lines else 300,
                               temperature=0.8)
    console.print("[dim]Samples (charlm sample for more):[/]")
    for text in samples:
        console.print("  " + text.replace("\n", "\n  "), markup=False)


def _nothing_to_do(trainer, reason):
    """What a resumed run that had nothing left to do says (Trainer.finished_already)."""
    c, rs = trainer.config, trainer.run_state
    from ..config import format_duration
    if reason == "steps":
        reached = f"{rs.step:,} steps, which reaches --steps {c.steps:,}", "a larger --steps"
    elif reason == "epochs":
        reached = (f"{trainer.epochs_done:.3g} epochs, which reaches --epochs {c.epochs:g}",
                   "a larger --epochs")
    elif reason == "time":
        reached = (f"{format_duration(trainer.elapsed)} of training, which reaches --max-time "
                   f"{format_duration(c.max_time)}", "a larger --max-time")
    else:
        reached = (f"{rs.step:,} steps and no new best in its last {c.patience} validations "
                   "(--patience)", "a larger --patience (0: never stop early)")
    return (f"{trainer.out} already holds {reached[0]}: nothing to train, the file is unchanged. "
            f"Give {reached[1]} with --resume to train further.")


def guarded(method):
    """A reporter method that a closed stderr does not break: the reporter goes quiet, and the
    run stops as for Ctrl-C (saving its state) before exiting 0 (docs/files.md)."""
    @functools.wraps(method)
    def guard(self, *args):
        if not self.closed:
            try:
                return method(self, *args)
            except BrokenPipeError:
                self.closed = True
                silence(sys.stderr)
        if method.__name__ == "start":
            raise BrokenPipeError      # nothing trained yet: the command ends before its first step
        if self.trainer is not None:
            self.trainer.stop_requested = True
        return None
    return guard


class NoticeReporter(Reporter):
    """--quiet: the choices made for the user (mode, model size, ...) on stderr, no progress."""

    closed = False          # stderr's reader has gone
    trainer = None

    def __init__(self, console):
        self.console = console

    @guarded
    def start(self, trainer):
        self.trainer = trainer

    @guarded
    def notice(self, message):
        from rich.markup import escape
        self.console.print(f"[dim]{escape(message)}[/]")


class LogReporter(NoticeReporter):
    """Progress for a file: the run's header, one line per validation and a one-line summary at
    the end, never a progress frame."""

    @guarded
    def start(self, trainer):
        from rich.markup import escape
        c = trainer.config
        recipe = recipe_text(c.dropout, c.locked_dropout, c.weight_drop, c.cold_starts,
                             c.ema_decay)
        self.console.print(f"[bold]charlm[/] {c.cell} {c.num_layers}x{c.hidden_size}"
                           f"{' bidirectional' if c.bidirectional else ''}, "
                           f"{trainer.params.flat.size:,} parameters, {c.mode} mode, "
                           f"{len(trainer.dataset.vocab)} tokens, batch {c.batch_size}x{c.seq_len}, "
                           f"{recipe} -> {escape(trainer.out)}")
        self.trainer = trainer
        self.smoothed = None
        self.steps_at_start = trainer.run_state.step

    @guarded
    def step(self, trainer, loss):
        self.smoothed = loss if self.smoothed is None else 0.95 * self.smoothed + 0.05 * loss

    def validation_line(self, trainer, record):
        val, train = record.val_loss, record.train_loss
        mark = " [green]best[/]" if record.best else ""
        losses = f"train {train:.4f}  val {val:.4f}" if train is not None else f"val {val:.4f}"
        return (f"step {record.step:>6}  {losses} nats ({val / math.log(2):.3f} bits/char){mark}"
                f"  [dim](validated in {trainer.run_state.eval_seconds:.1f}s)[/]")

    @guarded
    def evaluated(self, trainer, record):
        self.console.print(self.validation_line(trainer, record))

    @guarded
    def finish(self, trainer):
        from ..config import format_duration
        steps = trainer.run_state.step - self.steps_at_start
        loss = f", loss {self.smoothed:.3f}" if self.smoothed is not None else ""
        self.console.print(f"step {trainer.run_state.step:>6}  {steps:,} steps in this run{loss}, "
                           f"{(trainer.chars_per_sec or 0) * trainer.dataset.chars_per_token:,.0f} chars/s, "
                           f"{format_duration(trainer.elapsed)} of training")


class ProgressReporter(LogReporter):
    """On a terminal: a rich progress bar (step, loss, val loss, bits/char, chars/s, ETA) and one
    line per validation."""

    preparing_bar = None

    def preparing(self, done, total):
        """A bar over the bytes read while a large corpus is prepared (charlm.text.prepared)."""
        from .prepare import PreparingBar
        if self.preparing_bar is None:
            self.preparing_bar = PreparingBar(self.console, "preparing the corpus")
        self.preparing_bar.update(done, total)
        if done >= total:
            self.preparing_bar.close()

    def start(self, trainer):
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
        LogReporter.start(self, trainer)
        self.progress = Progress(
            TextColumn("step {task.fields[step]:>6}"), BarColumn(bar_width=16),
            TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("loss [cyan]{task.fields[loss]}[/]  val [magenta]{task.fields[val]}[/] "
                       "([magenta]{task.fields[bpc]}[/] bpc)  {task.fields[speed]} chars/s"),
            TimeElapsedColumn(), TextColumn("ETA {task.fields[eta]}"),
            console=self.console, transient=False)
        self.task = self.progress.add_task("train", total=1.0, step=trainer.run_state.step, loss="-",
                                           val="-", bpc="-", speed="-", eta="-")
        self.last_draw = 0.0
        self.progress.start()

    def step(self, trainer, loss):
        self.smoothed = loss if self.smoothed is None else 0.95 * self.smoothed + 0.05 * loss
        now = time.monotonic()
        if now - self.last_draw < 0.1:
            return
        self.last_draw = now
        done = min(trainer.progress(), 1.0)
        eta = trainer.elapsed * (1 - done) / done if done > 0 else None
        from ..config import format_duration
        self.progress.update(self.task, completed=done, step=trainer.run_state.step,
                             loss=f"{self.smoothed:.3f}",
                             speed=f"{(trainer.chars_per_sec or 0) * trainer.dataset.chars_per_token:,.0f}",
                             eta=format_duration(eta) if eta is not None else "-")

    def evaluated(self, trainer, record):
        """Every validation updates the bar and prints a line, with the time it took."""
        val = record.val_loss
        self.progress.update(self.task, val=f"{val:.3f}", bpc=f"{val / math.log(2):.3f}")
        self.progress.console.print(self.validation_line(trainer, record))

    def finish(self, trainer):
        self.progress.update(self.task, completed=min(trainer.progress(), 1.0), step=trainer.run_state.step)
        self.progress.stop()
