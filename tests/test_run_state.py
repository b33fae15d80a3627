"""The run state and the defects of issue 12: what a checkpoint holds before the first validation,
when validation runs, and stopping when validation stops improving."""
import json

import numpy as np

from charlm.store import checkpoint
from charlm.training.reporter import Reporter
from charlm.store.runstate import RunState
from charlm.training.trainer import new_trainer

from conftest import run_charlm


class StopAfter(Reporter):
    """Asks the run to stop after ``steps`` steps, as a first Ctrl-C does."""

    def __init__(self, steps):
        self.steps = steps

    def step(self, trainer, loss):
        if trainer.run_state.step >= self.steps:
            trainer.stop_requested = True


def test_before_the_first_validation_the_model_is_the_latest_weights(tmp_path, prose_file, tiny):
    out = tmp_path / "m.npz"
    trainer = new_trainer(str(prose_file), str(out), steps=100, eval_every=1000, reporter=StopAfter(5),
                      **tiny)
    initial = trainer.params.flat.copy()
    assert trainer.run() == "interrupted"
    saved = checkpoint.load(str(out), with_training_state=True)
    assert saved.training.run.step == 5 and not saved.training.run.validated
    assert np.array_equal(saved.weights.flat, saved.training.params)       # the latest ...
    assert not np.array_equal(saved.weights.flat, initial)                  # ... not the initial
    assert not np.array_equal(saved.weights.flat, saved.training.moments["average"])  # nor avg
    info = json.loads(run_charlm("info", out, "--json").stdout)
    assert info["validated"] is False and info["best_val_loss"] is None
    text = run_charlm("info", out).stdout
    assert "no validation ran yet" in text


def test_a_resumed_run_without_validation_keeps_using_the_latest_weights(tmp_path, prose_file,
                                                                         tiny):
    out = tmp_path / "m.npz"
    new_trainer(str(prose_file), str(out), steps=100, eval_every=1000, reporter=StopAfter(3), **tiny).run()
    resumed = new_trainer(str(prose_file), str(out), resume=True, reporter=StopAfter(6))
    resumed.run()
    saved = checkpoint.load(str(out), with_training_state=True)
    assert saved.training.run.step == 6
    assert np.array_equal(saved.weights.flat, saved.training.params)
    first = checkpoint.load(str(out), with_training_state=True).training.run.elapsed
    assert first > 0 and resumed.elapsed >= first     # the training time adds up over the runs


def test_validation_runs_at_every_twentieth_of_the_budget_and_at_the_end(tmp_path, prose_file, tiny):
    trainer = new_trainer(str(prose_file), str(tmp_path / "m.npz"), steps=50, patience=0, **tiny)
    trainer.run()
    steps = [record.step for record in trainer.run_state.history]
    assert steps == [round(k * 2.5 + 0.49) for k in range(1, 21)]   # 3, 5, 8, 10, ... 50


def test_a_run_stops_after_patience_validations_without_a_new_best(tmp_path, prose_file, tiny):
    trainer = new_trainer(str(prose_file), str(tmp_path / "m.npz"), steps=100, eval_every=2,
                      patience=3, **tiny)
    losses = iter([3.0, 2.0, 2.5, 2.1, 2.2, 1.0, 9.0])
    trainer.evaluate = lambda: next(losses)
    assert trainer.run() == "no improvement"
    history = trainer.run_state.history
    assert [r.val_loss for r in history] == [3.0, 2.0, 2.5, 2.1, 2.2]
    assert trainer.run_state.step == 10 and trainer.run_state.best_step == 4
    saved = checkpoint.load(str(tmp_path / "m.npz"))
    assert np.array_equal(saved.weights.flat, trainer.best)


def test_run_state_json_round_trip_and_bad_entries():
    state = RunState(step=7, chars_seen=100, best_val_loss=1.5, best_step=5, corpus={"chars": 3})
    again = RunState.from_json(state.to_json())
    assert again == state
    for bad in ({"step": -1}, {"step": "7"}, {"elapsed": float("nan")}, {"history": [{"x": 1}]},
                {"best_step": 1.5}, [1, 2], {"corpus": {"chars": "x"}},
                {"history": [{"step": 2, "elapsed": 0.1, "train_loss": None, "val_loss": "abc",
                              "best": True}]}):
        try:
            RunState.from_json(json.dumps(bad))
        except ValueError:
            continue
        raise AssertionError(f"{bad} was accepted")
    legacy = RunState.from_json(json.dumps({"step": 3, "epoch": 2, "rng": {"state": 1}}))
    assert legacy.step == 3 and legacy.dropout_masks == "one generator"
    assert legacy.epochs_done == 2.0            # written before the part of a pass was kept
