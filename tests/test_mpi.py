"""Data-parallel training over MPI (charlm.training.distributed): `mpiexec -n 2` gives, bit for bit, the run
of one process of two threads; runs resume across rank counts; every failure ends the whole job.

These run `mpiexec` from the MPI extra (pip install '.[mpi]'); without mpi4py they are skipped,
unless CHARLM_REQUIRE_MPI is set (CI sets it), which turns a missing MPI into a failure. Each rank
gets CHARLM_THREADS=1 and the single process CHARLM_THREADS=2, so the shards are the same on any
machine."""
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from charlm.store import checkpoint
from conftest import charlm_command

HAS_MPI = importlib.util.find_spec("mpi4py") is not None
needs_mpi = pytest.mark.skipif(not HAS_MPI and not os.environ.get("CHARLM_REQUIRE_MPI"),
                               reason="mpi4py is not installed (pip install '.[mpi]')")

OPTIONS = ["--hidden", "16", "--batch-size", "8", "--seq-len", "16", "--dropout", "0.3",
           "--eval-every", "3", "--seed", "11", "--json"]

# Rank 1 of a job runs this instead of charlm: the same command line, with a failure at its 4th
# training batch, the 5th call after the kernels' warm-up (HOW=raise: an exception; kill: SIGKILL;
# nan: a diverged loss).
FAILING_RANK = """
import math, os, signal
from charlm.network import stack as model
train_share = model.Network.loss_and_gradients
calls = []

def failing(self, *args, **kwargs):
    calls.append(1)
    if len(calls) == 5:
        how = os.environ["HOW"]
        if how == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if how == "raise":
            raise RuntimeError("injected failure")
        loss, count, state = train_share(self, *args, **kwargs)
        return math.nan, count, state
    return train_share(self, *args, **kwargs)

model.Network.loss_and_gradients = failing
from charlm.cli import main
main()
"""


def mpiexec():
    found = Path(sys.executable).with_name("mpiexec")
    if found.exists():
        return str(found)
    found = shutil.which("mpiexec")
    if found is None:
        pytest.fail("mpiexec is not installed: pip install '.[mpi]'")
    return found


def environment(threads, **extra):
    env = dict(os.environ, CHARLM_THREADS=str(threads), **extra)
    return env


def run(command, threads, timeout=300, **extra):
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                          env=environment(threads, **extra))


def ranks(n, *args, threads=1, **extra):
    """`mpiexec -n n charlm ARGS`."""
    return run([mpiexec(), "-n", str(n)] + charlm_command() + [str(a) for a in args], threads,
               **extra)


def one_process(*args, threads=2):
    return run(charlm_command() + [str(a) for a in args], threads)


def finished(done):
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, "rank 0 alone answers --json"
    return json.loads(lines[0])


def saved_run(path):
    """Every array of a checkpoint, and the validation history (its wall times left out)."""
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files if k != "state.json"}
        history = json.loads(str(f["state.json"]))["history"]
    return arrays, [(r["step"], r["train_loss"], r["val_loss"], r["best"]) for r in history]


def last_step(path):
    return checkpoint.load(str(path), with_training_state=True).training.run.step


def assert_same_run(a, b, same_history=True):
    arrays_a, history_a = saved_run(a)
    arrays_b, history_b = saved_run(b)
    assert arrays_a.keys() == arrays_b.keys()
    assert "state.opt.m" in arrays_a and "state.opt.v" in arrays_a
    for name, array in arrays_a.items():
        assert np.array_equal(array, arrays_b[name]), name
    assert history_a and (history_a == history_b or not same_history)


@needs_mpi
@pytest.mark.parametrize("corpus", ["prose_file", "names_file"])
def test_two_ranks_of_one_thread_equal_one_process_of_two(tmp_path, request, corpus):
    corpus = request.getfixturevalue(corpus)
    two = finished(ranks(2, "train", corpus, "--steps", 6, "--out", tmp_path / "two.npz", *OPTIONS))
    one = finished(one_process("train", corpus, "--steps", 6, "--out", tmp_path / "one.npz",
                               *OPTIONS))
    assert two["distributed"]["ranks"] == 2 and two["distributed"]["threads_per_rank"] == 1
    assert two["distributed"]["allreduce_bytes"] == 4 * one["config"]["parameters"]
    assert two["config"]["mode"] == ("stream" if corpus.name == "prose.txt" else "lines")
    assert_same_run(tmp_path / "two.npz", tmp_path / "one.npz")


@needs_mpi
def test_ranks_read_a_prepared_corpus_as_one_process_does(tmp_path, prose_file):
    assert run(charlm_command() + ["prepare", str(prose_file)], 1).returncode == 0
    finished(ranks(2, "train", prose_file, "--steps", 6, "--out", tmp_path / "two.npz", *OPTIONS))
    finished(one_process("train", prose_file, "--steps", 6, "--out", tmp_path / "one.npz",
                         *OPTIONS))
    assert_same_run(tmp_path / "two.npz", tmp_path / "one.npz")


@needs_mpi
def test_one_rank_equals_a_plain_run(tmp_path, prose_file):
    finished(ranks(1, "train", prose_file, "--steps", 6, "--out", tmp_path / "mpi.npz", *OPTIONS,
                   threads=2))
    finished(one_process("train", prose_file, "--steps", 6, "--out", tmp_path / "plain.npz",
                         *OPTIONS))
    assert_same_run(tmp_path / "mpi.npz", tmp_path / "plain.npz")


@needs_mpi
def test_a_run_started_on_two_ranks_resumes_on_one(tmp_path, names_file):
    out = tmp_path / "half.npz"
    finished(ranks(2, "train", names_file, "--steps", 4, "--out", out, *OPTIONS))
    finished(one_process("train", names_file, "--out", out, "--resume", "--steps", 8, "--json"))
    finished(one_process("train", names_file, "--steps", 8, "--out", tmp_path / "whole.npz",
                         *OPTIONS))
    # the same weights, moments and position; the stopped run also validated where it stopped
    assert_same_run(out, tmp_path / "whole.npz", same_history=False)


@needs_mpi
def test_rank_0_alone_locks_out_and_a_locked_out_refuses_the_job(tmp_path, names_file):
    from charlm.store.outputs import OutputLock
    out = tmp_path / "m.npz"
    with OutputLock(str(out)):          # held by this process, as another run would hold it
        refused = ranks(2, "train", names_file, "--steps", 4, "--out", out, *OPTIONS)
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error: ")]
    assert refused.returncode == 6, refused.stderr
    assert len(errors) == 1 and f"process {os.getpid()}" in errors[0], refused.stderr
    assert not out.exists()
    finished(ranks(2, "train", names_file, "--steps", 4, "--out", out, *OPTIONS))
    assert last_step(out) == 4 and not (tmp_path / "m.npz.lock").exists()


@needs_mpi
def test_threads_per_rank_are_the_cores_shared_among_the_ranks_on_them(tmp_path, prose_file):
    env = {k: v for k, v in os.environ.items() if k != "CHARLM_THREADS"}
    done = subprocess.run([mpiexec(), "-n", "2"] + charlm_command() +
                          ["train", str(prose_file), "--steps", "1", "--out",
                           str(tmp_path / "m.npz")] + OPTIONS,
                          capture_output=True, text=True, timeout=300, env=env)
    cores = len(os.sched_getaffinity(0))
    # MPICH does not bind ranks to cores: both share this process's cores
    assert finished(done)["distributed"]["threads_per_rank"] == max(1, cores // 2)


WORDS = ["--tokens", "words", "--vocab-size", "12"]


@needs_mpi
@pytest.mark.parametrize("corpus", ["prose_file", "names_file"])
def test_a_word_model_on_two_ranks_equals_one_process_of_two(tmp_path, request, corpus):
    corpus = request.getfixturevalue(corpus)
    two = finished(ranks(2, "train", corpus, "--steps", 6, "--out", tmp_path / "two.npz",
                         *WORDS, *OPTIONS))
    finished(one_process("train", corpus, "--steps", 6, "--out", tmp_path / "one.npz", *WORDS,
                         *OPTIONS))
    assert two["tokens"] == "words" and two["vocab_size"] == 14
    assert_same_run(tmp_path / "two.npz", tmp_path / "one.npz")
    sample = one_process("sample", "--model", tmp_path / "two.npz", "--length", 5, "--json")
    assert sample.returncode == 0, sample.stderr
    score = json.loads(one_process("score", "--model", tmp_path / "two.npz", "the cat",
                                   "--json").stdout)["results"][0]
    lines = corpus.name == "names.txt"         # a line's closing <EOS> counts as a character
    assert score["tokens"] == "words" and score["num_chars"] == len("the cat") + lines


@needs_mpi
def test_ranks_cut_a_prepared_corpus_into_words_once_and_resume(tmp_path, prose_file):
    """Rank 0 writes the word copy of a corpus prepared without one; the other rank reads it."""
    assert run(charlm_command() + ["prepare", str(prose_file)], 1).returncode == 0
    out = tmp_path / "two.npz"
    finished(ranks(2, "train", prose_file, "--steps", 4, "--out", out, *WORDS, *OPTIONS))
    assert (Path(f"{prose_file}.charlm") / "words.bin").exists()
    resumed = finished(ranks(2, "train", prose_file, "--out", out, "--resume", "--steps", 8,
                             "--json"))
    assert resumed["steps"] == 8 and resumed["tokens"] == "words"
    (Path(f"{prose_file}.charlm") / "meta.json").unlink()       # the whole run from memory
    finished(one_process("train", prose_file, "--steps", 8, "--out", tmp_path / "one.npz",
                         *WORDS, *OPTIONS))
    assert_same_run(out, tmp_path / "one.npz", same_history=False)


def failing_job(tmp_path, corpus, how):
    """Rank 0 runs charlm, rank 1 the failing copy; returns (the finished job, its --out)."""
    script = tmp_path / "failing_rank.py"
    script.write_text(FAILING_RANK)
    out = tmp_path / "run.npz"
    args = ["train", str(corpus), "--steps", "50", "--checkpoint-every", "2", "--val-frac", "0",
            "--hidden", "16", "--batch-size", "8", "--seq-len", "16", "--out", str(out), "--quiet"]
    command = ([mpiexec(), "-n", "1"] + charlm_command() + args +
               [":", "-n", "1", sys.executable, str(script)] + args)
    return run(command, 1, HOW=how), out


@needs_mpi
@pytest.mark.parametrize("how", ["raise", "kill"])
def test_a_rank_that_fails_ends_the_job_and_the_checkpoint_loads(tmp_path, prose_file, how):
    done, out = failing_job(tmp_path, prose_file, how)      # no hang: run() would time out
    assert done.returncode != 0
    if how == "raise":
        assert done.stderr.count("injected failure") == 1
        assert "error: rank 1 of 2:" in done.stderr
    assert last_step(out) == 2      # the checkpoint written before the failure loads


@needs_mpi
def test_a_labelled_corpus_is_refused_once_for_the_whole_job(tmp_path):
    corpus = tmp_path / "c.tsv"
    corpus.write_text("a\tAnna\nb\tBob\n" * 20, encoding="utf-8")
    refused = ranks(2, "train", corpus, "--labels", "--steps", 2, "--out", tmp_path / "m.npz")
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error: ")]
    assert refused.returncode == 2 and len(errors) == 1, refused.stderr
    assert "trains in one process" in errors[0] and not (tmp_path / "m.npz").exists()


@needs_mpi
def test_a_diverged_loss_stops_every_rank_with_one_message(tmp_path, prose_file):
    done, out = failing_job(tmp_path, prose_file, "nan")
    assert done.returncode == 5
    assert done.stderr.count("the loss became nan at step 4") == 1
    assert last_step(out) == 2


@needs_mpi
def test_ctrl_c_to_mpiexec_stops_every_rank_at_the_same_step_and_saves(tmp_path, prose_file):
    out = tmp_path / "run.npz"
    command = ([mpiexec(), "-n", "2"] + charlm_command() +
               ["train", str(prose_file), "--steps", "1000000", "--checkpoint-every", "3",
                "--hidden", "16", "--batch-size", "8", "--seq-len", "16", "--out", str(out),
                "--eval-every", "3", "--patience", "0"])
    job = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=environment(1))
    seen = ""
    for line in job.stderr:          # rank 0's first validation line: a checkpoint is saved
        seen += line
        if "bits/char)" in line:
            break
    job.send_signal(signal.SIGINT)
    stdout, stderr = job.communicate(timeout=120)
    stderr = seen + stderr
    assert job.returncode == 130, stderr
    assert stderr.count("SIGINT: every rank saves the latest state") == 1
    step = last_step(out)
    assert f"Stopped at step {step}; saved to" in stdout
    resumed = finished(ranks(2, "train", prose_file, "--out", out, "--resume", "--steps", step + 2,
                             "--json"))
    assert resumed["steps"] == step + 2


def test_under_a_launcher_without_mpi4py_train_exits_2_with_the_install_command(tmp_path,
                                                                                  prose_file):
    hide = tmp_path / "hide"
    (hide / "mpi4py").mkdir(parents=True)
    (hide / "mpi4py" / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
    done = subprocess.run(charlm_command() + ["train", str(prose_file), "--steps", "1"],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PMI_RANK="0", PMI_SIZE="2",
                                   PYTHONPATH=str(hide)))
    assert done.returncode == 2
    assert "pip install 'charlm[mpi]'" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
