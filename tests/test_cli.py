"""The command line: the design card end to end, one clear line for every bad input, and training
that survives Ctrl-C and kill -9."""
import json
import os
import random
import signal
import subprocess
import time

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings, strategies as st

from charlm.store import checkpoint
from charlm.cli import main

from conftest import NAMES, Training, run_charlm


def invoke(*args):
    """Run the CLI in this process (fast); returns click's Result with stdout and stderr apart."""
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def assert_one_line_error(result, code, pattern=""):
    assert result.exit_code == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr and pattern.lower() in lines[0].lower(), lines[0]


def test_design_card_lines_run_in_an_empty_folder(tmp_path):
    (tmp_path / "corpus.txt").write_text("\n".join(NAMES * 3) + "\n")
    train = run_charlm("train", "corpus.txt", cwd=tmp_path)
    assert train.returncode == 0, train.stderr
    assert "saved to charlm.npz" in train.stdout
    sample = run_charlm("sample", "--length", "200", cwd=tmp_path)
    assert sample.returncode == 0, sample.stderr
    assert sample.stdout.strip()
    score = run_charlm("score", "some sentence", cwd=tmp_path)
    assert score.returncode == 0, score.stderr
    assert "some" in score.stdout and "<UNK>" in score.stderr      # space and c are not in names


def test_python_dash_m_is_the_same_command():
    import sys
    result = subprocess.run([sys.executable, "-m", "charlm", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and "charlm" in result.stdout


def test_train_json_summary_and_info(tmp_path, names_file):
    out = tmp_path / "m.npz"
    result = invoke("train", names_file, "--out", out, "--hidden", 16, "--steps", 12,
                    "--eval-every", 6, "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    for key in ("steps", "train_loss", "best_val_loss", "best_val_bpc", "chars_per_sec", "model"):
        assert key in summary
    assert summary["steps"] == 12 and summary["model"] == str(out)
    assert summary["best_val_bpc"] == pytest.approx(summary["best_val_loss"] / 0.6931471805599453)
    info = json.loads(invoke("info", out, "--json").stdout)
    assert info["config"]["hidden_size"] == 16 and info["steps"] == 12
    assert 0 < info["epochs"] == summary["epochs"]          # passes made, a part of one counted
    assert [r["step"] for r in info["history"]] == [6, 12]
    shown = invoke("info", out)
    assert shown.exit_code == 0 and "validation history" in shown.stdout
    assert "<UNK> and A" in shown.stdout        # names: no space, newline or tab in the vocabulary


def test_cold_starts_are_recorded_and_shown(tmp_path, prose_file):
    out = tmp_path / "m.npz"
    result = invoke("train", prose_file, "--out", out, "--hidden", 16, "--steps", 4,
                    "--cold-starts", 0.25, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["config"]["cold_starts"] == 0.25
    assert json.loads(invoke("info", out, "--json").stdout)["config"]["cold_starts"] == 0.25
    assert "cold starts 0.25" in invoke("info", out).stdout
    lines = invoke("train", prose_file, "--out", tmp_path / "l.npz", "--mode", "lines",
                   "--cold-starts", 0.25, "--steps", 2)
    assert lines.exit_code == 2 and "in lines mode every line" in lines.stderr


def test_the_average_of_the_weights_is_recorded_and_shown(tmp_path, prose_file):
    out = tmp_path / "m.npz"
    result = invoke("train", prose_file, "--out", out, "--hidden", 16, "--steps", 4, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["config"]["ema_decay"] == 0.995
    assert "weights averaged (EMA 0.995)" in invoke("info", out).stdout
    plain = invoke("train", prose_file, "--out", tmp_path / "p.npz", "--hidden", 16, "--steps", 4,
                   "--ema-decay", 0, "--json")
    assert json.loads(plain.stdout)["config"]["ema_decay"] == 0
    assert "averaged" not in invoke("info", tmp_path / "p.npz").stdout
    refused = invoke("train", prose_file, "--out", tmp_path / "r.npz", "--ema-decay", 1)
    assert refused.exit_code == 2 and "--ema-decay must be in [0, 1)" in refused.stderr
    assert not (tmp_path / "r.npz").exists()


def test_help_has_examples_on_every_command():
    for command in ([], ["train"], ["sample"], ["score"], ["info"]):
        result = invoke(*command, "--help")
        assert result.exit_code == 0 and "Examples:" in result.stdout, command


@pytest.fixture
def bad_files(tmp_path):
    files = {"empty": b"", "blank": b"\n \n\t\n", "latin1": "caf\u00e9 au lait\n".encode("latin-1"),
             "binary": bytes(range(256)) * 4}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "folder").mkdir()
    return tmp_path


@pytest.mark.parametrize("name,code,pattern", [
    ("missing.txt", 3, "no such file"),
    ("folder", 3, "is a folder"),
    ("empty", 3, "is empty"),
    ("blank", 3, "is empty"),
    ("latin1", 3, "byte 0xe9 at offset 3"),
    ("binary", 3, "binary file"),
])
def test_bad_corpora(bad_files, name, code, pattern):
    result = invoke("train", bad_files / name, "--out", bad_files / "m.npz")
    assert_one_line_error(result, code, pattern)
    assert not (bad_files / "m.npz").exists()


def test_another_encoding_can_be_read(bad_files):
    result = invoke("train", bad_files / "latin1", "--encoding", "latin-1", "--steps", 2, "--hidden", 8,
                    "--out", bad_files / "m.npz", "--quiet")
    assert result.exit_code == 0, result.stderr
    assert "é" in checkpoint.load(str(bad_files / "m.npz")).vocab.tokens
    assert_one_line_error(invoke("train", bad_files / "latin1", "--encoding", "klingon"), 2, "unknown encoding")


def test_a_corpus_shorter_than_a_batch_shrinks_it_with_a_notice(tmp_path):
    corpus = tmp_path / "short.txt"
    corpus.write_text("To be or not to be.\n\nThat is the question.\n")
    result = invoke("train", corpus, "--out", tmp_path / "m.npz", "--steps", 3, "--hidden", 8, "--quiet")
    assert result.exit_code == 0, result.stderr
    assert "batch 50 x sequence 50 ->" in result.stderr


def test_unknown_cell_and_mode_are_one_line(names_file):
    assert_one_line_error(invoke("train", names_file, "--cell", "transformer"), 2, "--cell")
    assert_one_line_error(invoke("train", names_file, "--mode", "words"), 2, "--mode")
    assert_one_line_error(invoke("train", names_file, "--max-time", "soon"), 2, "--max-time")
    assert_one_line_error(invoke("train", names_file, "--hidden", "big"), 2, "--hidden")
    assert_one_line_error(invoke("train", names_file, "--resume", "--force"), 2, "contradict")


def test_output_in_a_missing_folder_or_a_folder_is_refused_before_training(tmp_path, names_file):
    assert_one_line_error(invoke("train", names_file, "--out", tmp_path / "no" / "m.npz"), 2, "there is no folder")
    assert_one_line_error(invoke("train", names_file, "--out", tmp_path), 2, "is a folder")


def test_existing_output_needs_resume_or_force(tmp_path, names_file):
    out = tmp_path / "m.npz"
    out.write_bytes(b"precious")
    assert_one_line_error(invoke("train", names_file, "--out", out), 2, "--resume")
    assert out.read_bytes() == b"precious"


@pytest.mark.parametrize("model", ["missing.npz", "garbage.npz"])
def test_bad_checkpoints_for_info_and_resume(tmp_path, names_file, model):
    (tmp_path / "garbage.npz").write_bytes(os.urandom(300))
    assert_one_line_error(invoke("info", tmp_path / model), 4)
    code = 2 if model == "missing.npz" else 4
    assert_one_line_error(invoke("train", names_file, "--out", tmp_path / model, "--resume"), code)


OUT_OF_RANGE = {
    "--hidden": st.integers(max_value=0), "--layers": st.integers(max_value=0),
    "--seq-len": st.integers(max_value=0), "--batch-size": st.integers(max_value=0),
    "--dropout": st.one_of(st.floats(max_value=-1e-9, allow_nan=False), st.floats(min_value=1.0)),
    "--lr": st.floats(max_value=0.0, allow_nan=False), "--clip": st.floats(max_value=-1e-9, allow_nan=False),
    "--steps": st.integers(max_value=0), "--epochs": st.floats(max_value=0.0, allow_nan=False),
    "--val-frac": st.one_of(st.floats(max_value=-1e-9, allow_nan=False), st.floats(min_value=1.0)),
    "--min-count": st.integers(max_value=0), "--checkpoint-every": st.integers(max_value=0),
    "--eval-every": st.integers(max_value=0), "--seed": st.integers(max_value=-1),
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(option=st.sampled_from(sorted(OUT_OF_RANGE)), data=st.data())
def test_numeric_options_out_of_range_are_one_line(tmp_path, names_file, option, data):
    value = data.draw(OUT_OF_RANGE[option])
    result = invoke("train", names_file, "--out", tmp_path / "never.npz", option, value)
    assert_one_line_error(result, 2, option)
    assert not (tmp_path / "never.npz").exists()


def test_ctrl_c_saves_and_says_how_to_resume(tmp_path, prose_file):
    out = tmp_path / "m.npz"
    training = Training(prose_file, out, "--steps", "1000000", "--eval-every", "20", size=32)
    training.wait_for("bits/char)")                 # the first validation: step 20
    training.process.send_signal(signal.SIGINT)
    code, stdout, stderr = training.finish()
    assert code == 130, stderr
    assert "Traceback" not in stderr
    assert "--resume" in stdout
    step = checkpoint.load(str(out), True).training.run.step
    assert step >= 20
    resumed = run_charlm("train", prose_file, "--out", out, "--resume", "--steps", step + 3, "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["steps"] == step + 3


def test_kill_9_at_any_moment_leaves_a_loadable_checkpoint(tmp_path, prose_file):
    out = tmp_path / "m.npz"
    rng = random.Random(11)
    for kill in range(4):
        training = Training(prose_file, out, "--steps", "1000000", "--checkpoint-every", "1",
                            "--eval-every", "2", "--patience", "0", *(["--resume"] if out.exists() else []),
                            size=32)
        training.wait_for("bits/char)")   # a checkpoint exists: step 1 saved before step 2
        # a moment drawn at random among saves that follow each other step after step; no
        # assertion depends on how many steps the machine runs meanwhile
        time.sleep(rng.uniform(0.0, 1.5))
        training.process.kill()
        training.finish()
        loaded = checkpoint.load(str(out), True)            # never torn: old file or new one
        assert loaded.training.run.step >= 1


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    import numpy as np
    from charlm.store.checkpoint import Checkpoint, save
    from charlm.config import Config
    from charlm.network.stack import FlatArrays, init_parameters, parameter_shapes
    from charlm.text.vocab import Vocab
    vocab = Vocab.from_text("abc\n")
    weights = FlatArrays(parameter_shapes("gru", len(vocab), 4, 1))
    init_parameters(weights, "gru", np.random.default_rng(0))
    path = tmp_path_factory.mktemp("model") / "m.npz"
    save(str(path), Checkpoint(Config(cell="gru", hidden_size=4, num_layers=1, mode="lines", dropout=0.0),
                               vocab, weights))
    return path


SAMPLE_OUT_OF_RANGE = {
    "--temperature": st.floats(max_value=-1e-9, allow_nan=False),
    "--top-p": st.one_of(st.floats(max_value=0.0, allow_nan=False), st.floats(min_value=1.0 + 1e-9)),
    "--top-k": st.integers(max_value=-1), "--length": st.integers(max_value=-1),
    "--num": st.integers(max_value=0),
}


@settings(max_examples=40, deadline=None)
@given(option=st.sampled_from(sorted(SAMPLE_OUT_OF_RANGE)), data=st.data())
def test_sample_options_out_of_range_are_one_line(tiny_model, option, data):
    value = data.draw(SAMPLE_OUT_OF_RANGE[option])
    assert_one_line_error(invoke("sample", "--model", tiny_model, option, value), 2, option)


def test_views_are_in_colour_only_where_the_terminal_shows_colour(monkeypatch):
    """A terminal with NO_COLOR set, or TERM=dumb, gets the plain views that files get (which
    say in text what colour would show), not coloured ones with the colour stripped."""
    import io
    from rich.console import Console
    from charlm.cli.common import in_colour
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    assert in_colour(Console(force_terminal=True))
    assert not in_colour(Console(file=io.StringIO()))
    monkeypatch.setenv("NO_COLOR", "1")
    assert not in_colour(Console(force_terminal=True))
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("TERM", "dumb")
    assert not in_colour(Console(force_terminal=True))
