"""Training curves: the training and the validation loss of a run against its steps (and the time
they took), from the validation history that the run state keeps (``runstate.RunState.history``),
with the number of steps on which gradient clipping acted.

The training loss of a record is the mean over the steps since the validation before it, so both
curves have one point per validation. A run without validation keeps no history and has no curve.
"""
import math

from ..config import format_duration

NO_CURVE = ("no loss curve: no validation has run (trained with --val-frac 0, stopped before the "
            "first validation, or a checkpoint without its training state)")


def series(history):
    """The history ([Evaluation]) as lists: steps, elapsed (s), train_loss (None before the first
    step), val_loss (nats/char), best (a new best validation loss)."""
    return {"steps": [r.step for r in history], "elapsed": [r.elapsed for r in history],
            "train_loss": [r.train_loss for r in history],
            "val_loss": [r.val_loss for r in history], "best": [r.best for r in history]}


def clipping_summary(clipped_steps, steps):
    """'gradient clipped on 37 of 1,015 steps (3.6%)'."""
    share = f" ({100 * clipped_steps / steps:.1f}%)" if steps else ""
    return f"gradient clipped on {clipped_steps:,} of {steps:,} steps{share}"


def loss_label(kind):
    """What the loss axis measures: a word model ("words") trains on nats per token and is
    validated in nats per character (docs/words.md)."""
    return ("loss (nats/char)" if kind == "chars"
            else "loss (training: nats/token; validation: nats/char)")


def render(run_state, width=80, height=16, colour=True, kind="chars"):
    """A rich renderable: the loss curves of the run, titled with the clipping count, or a line
    saying why there is no curve. ``run_state`` is a RunState (or None: no training state);
    ``kind`` the model's tokens ("chars" or "words")."""
    from rich.console import Group
    from rich.text import Text

    from .plot import Line, line_plot
    history = run_state.history if run_state is not None else []
    if not history:
        return Text(NO_CURVE, style="dim")
    s = series(history)
    lines = [Line("validation", s["steps"], s["val_loss"])]
    trained = [(step, loss) for step, loss in zip(s["steps"], s["train_loss"]) if loss is not None]
    if trained:
        lines.append(Line("training (mean since the previous validation)",
                          [step for step, _ in trained], [loss for _, loss in trained]))
    best = min(range(len(history)), key=lambda i: history[i].val_loss)
    header = Text.assemble(
        (loss_label(kind) + " ", "bold"), "by step (time) · ",
        (clipping_summary(run_state.clipped_steps, run_state.step),
         "bold yellow" if run_state.clipped_steps else "bold"))
    val = s["val_loss"][best]
    footer = Text(f"best validation {val:.4f} nats ({val / math.log(2):.3f} bits/char) "
                  f"at step {s['steps'][best]:,}", style="dim")
    plot = line_plot(lines, width, height, colour=colour, xticks=_step_ticks(s))
    return Group(header, plot, footer)


def _step_ticks(s):
    """Up to five records, spread evenly over the steps, as x ticks, each labelled with its
    step and the time then."""
    steps = s["steps"]
    targets = [steps[0] + i * (steps[-1] - steps[0]) / 4 for i in range(5)]
    picks = sorted({min(range(len(steps)), key=lambda i: abs(steps[i] - t)) for t in targets})
    return ([s["steps"][i] for i in picks],
            [f"{s['steps'][i]:,} ({format_duration(s['elapsed'][i])})" for i in picks])
