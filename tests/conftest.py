"""Shared fixtures. Tiny models keep every test fast; the Numba kernels compile once and are cached
on disk (``cache=True``), so later tests and later runs load them."""
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

# Tiny matrices gain nothing from BLAS threads and two-core machines lose a lot to them when the
# test processes run side by side. Set before numpy loads BLAS, and inherited by subprocesses.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

NAMES = ["Anna", "Bob", "Carla", "Dmitri", "Eve", "Fatima", "Gus", "Hana", "Ivo", "Jun", "Kemal",
         "Lea", "Mia", "Noor", "Otto", "Pia", "Quinn", "Rosa", "Sven", "Tao"]


def charlm_command():
    """The installed console script next to this interpreter (what a user runs)."""
    script = Path(sys.executable).with_name("charlm")
    if not script.exists():
        found = shutil.which("charlm")
        if found is None:
            pytest.fail("the charlm console script is not installed: pip install -e '.[test]'")
        script = Path(found)
    return [str(script)]


def run_charlm(*args, cwd=None, timeout=300, env=None):
    """Run the installed charlm command; returns the CompletedProcess (text mode)."""
    return subprocess.run(charlm_command() + [str(a) for a in args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=env)


@pytest.fixture(autouse=True)
def in_its_own_folder(tmp_path, monkeypatch):
    """Every test runs in its own empty folder, so files in the current folder (the charlm.npz
    that the README's first command writes in the repository) never change a result."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def names_file(tmp_path):
    """A small list of names (lines mode)."""
    path = tmp_path / "names.txt"
    path.write_text("\n".join(NAMES * 3) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def prose_file(tmp_path):
    """A little running text with blank lines (stream mode), generated here."""
    rng = np.random.default_rng(7)
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "to", "its", "bed"]
    paragraphs = [" ".join(rng.choice(words, 40)) + "." for _ in range(40)]
    path = tmp_path / "prose.txt"
    path.write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def tiny(tmp_path):
    """Options for a very small, quick model."""
    return dict(hidden_size=16, num_layers=2, batch_size=8, seq_len=16, seed=3)


class Training:
    """``charlm train`` in a process of its own (``size`` units, batches of 8 x ``size``), read
    line by line as it runs: a test waits for a line of its output (an event), never for the
    clock. The deadline only guards against a hang: it kills the process, which ends any read."""

    def __init__(self, corpus, out, *options, size=16, deadline=300, cwd=None):
        self.process = subprocess.Popen(
            charlm_command() + ["train", str(corpus), "--out", str(out), "--hidden", str(size),
                                "--batch-size", "8", "--seq-len", str(size), *options],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd)
        self.guard = threading.Timer(deadline, self.process.kill)
        self.guard.daemon = True        # a failed test must not keep pytest waiting for it
        self.guard.start()
        self.stderr = ""

    def wait_for(self, text):
        """Read stderr up to the first line holding text; returns that line."""
        for line in self.process.stderr:
            self.stderr += line
            if text in line:
                return line
        pytest.fail(f"charlm train ended before writing {text!r}:\n{self.stderr}")

    def finish(self):
        """(exit code, stdout, stderr) once the process has ended."""
        self.stderr += self.process.stderr.read()
        stdout = self.process.stdout.read()
        code = self.process.wait()
        self.guard.cancel()
        return code, stdout, self.stderr
