"""``charlm info``: what a checkpoint holds."""
import math

import click

from ..config import recipe_text
from .common import DEFAULT_MODEL, consoles, in_colour, print_json, reports_errors

EXAMPLES = """
\b
Examples:
  charlm info                 # describes charlm.npz
  charlm info names.npz --json
"""


@click.command(epilog=EXAMPLES)
@click.argument("model", default=DEFAULT_MODEL, required=False)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@reports_errors
def info(model, as_json):
    """Describe the checkpoint MODEL: its config, size, vocabulary, training and validation history."""
    from ..store.checkpoint import load
    ckpt = load(model, with_training_state=True)
    report = describe(ckpt, model)
    if as_json:
        print_json(report)
    else:
        _print(report)
        _print_curves(ckpt)


def describe(ckpt, path):
    run = ckpt.training.run if ckpt.training else None
    best = run.best_val_loss if run else None
    return {
        "model": path, "config": _config(ckpt.config), "parameters": int(ckpt.weights.flat.size),
        "tokens": ckpt.vocab.kind, "vocab_size": len(ckpt.vocab), "vocab": ckpt.vocab.tokens,
        "steps": run.step if run else None, "epochs": round(run.epochs_done, 3) if run else None,
        "train_seconds": run.elapsed if run else None,
        "validated": run.validated if run else None,
        "best_val_loss": best, "best_val_bpc": best / math.log(2) if best is not None else None,
        "best_step": run.best_step if run else None,
        "clipped_steps": run.clipped_steps if run else None,
        "resumable": ckpt.training is not None,
        "labels": [{"label": name, "count": count} for name, count in
                   zip(ckpt.config.labels or [], ckpt.config.label_counts or [])],
        "history": [{"step": r.step, "elapsed": r.elapsed, "train_loss": r.train_loss,
                     "val_loss": r.val_loss} for r in run.history] if run else [],
    }


def _config(config):
    import dataclasses
    return dataclasses.asdict(config)


def _print(report):
    from rich.table import Table
    from rich.text import Text
    from ..text.vocab import is_label
    console, _ = consoles()
    c = report["config"]
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_row("model", f"[bold]{c['cell']}[/] {c['num_layers']}x{c['hidden_size']}"
                           f"{' bidirectional' if c.get('bidirectional') else ''}, "
                           f"{report['parameters']:,} parameters, {c['mode']} mode")
    recipe = recipe_text(c['dropout'], c.get('locked_dropout'), c.get('weight_drop'),
                         c.get('cold_starts'), c.get('ema_decay'))
    table.add_row("training", f"batch {c['batch_size']}x{c['seq_len']}, {c['optimizer']} "
                              f"lr {c['lr']:g}, {recipe}, clip {c['clip']:g}, seed {c['seed']}")
    if report["steps"] is not None:
        clipped = report["clipped_steps"]
        table.add_row("progress", f"{report['steps']:,} steps, {report['train_seconds'] or 0:.0f}s of training, "
                                  f"gradient clipped on {clipped:,} of them")
    if report["validated"] is False:
        table.add_row("best val", "[yellow]no validation ran yet[/]: the weights are the latest ones")
    if report["best_val_loss"] is not None:
        table.add_row("best val", f"{report['best_val_loss']:.4f} nats/char "
                                  f"({report['best_val_bpc']:.3f} bits/char) at step {report['best_step']}")
    chars = "".join(t for t in report["vocab"][2:] if t.isprintable() and t != " "
                    and not is_label(t))
    if report["tokens"] == "words":     # docs/words.md
        shown = " ".join(t for t in report["vocab"][2:42] if t.strip() and not is_label(t))
        table.add_row("vocabulary", Text(f"{report['vocab_size']:,} tokens (words, punctuation, "
                                         f"whitespace): <EOS> <UNK>, most frequent first: "
                                         f"{shown} ..."))
    else:
        spaces = {" ": "space", "\n": "newline", "\t": "tab"}
        named = " ".join(name for ch, name in spaces.items() if ch in report["vocab"])
        table.add_row("vocabulary", Text(f"{report['vocab_size']} tokens: <EOS> <UNK> "
                                         f"{named + ' ' if named else ''}and {chars}"))
    table.add_row("resumable", "yes (--resume)" if report["resumable"] else "no (weights only)")
    if report["labels"]:
        table.add_row("labels", Text(", ".join(f"{r['label']} ({r['count']:,})"
                                               for r in report["labels"]) + " training examples"))
    console.print(table)
    if report["history"]:
        _print_history(console, report["history"], report["tokens"])


def _print_history(console, history, tokens):
    """The validation curve at a glance: at most a dozen rows, evenly spread, and the last."""
    from rich.table import Table
    keep = sorted(set(history[i]["step"] for i in
                      range(0, len(history), -(-len(history) // 12))) | {history[-1]["step"]})
    # a word model trains on tokens and validates per character (docs/words.md)
    train = "train nats/token" if tokens == "words" else "train nats"
    table = Table("step", "time", train, "val nats/char", "bits/char", title="validation history")
    for r in history:
        if r["step"] in keep:
            val = r["val_loss"]
            table.add_row(str(r["step"]), f"{r['elapsed']:.0f}s",
                          f"{r['train_loss']:.4f}" if r["train_loss"] is not None else "-",
                          f"{val:.4f}", f"{val / math.log(2):.3f}")
    console.print(table)


def _print_curves(ckpt):
    """The loss curves of the run, titled with the steps on which clipping acted."""
    from ..views import curves
    console, _ = consoles()
    run = ckpt.training.run if ckpt.training else None
    console.print(curves.render(run, width=min(console.width, 100), colour=in_colour(console),
                                kind=ckpt.vocab.kind))
