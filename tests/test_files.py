"""The files charlm writes (docs/files.md), each rule held through the installed ``charlm``
command: no run writes over a file it reads, report -o replaces only its own pages, outputs are
checked before any work, one writer per checkpoint (two real concurrent runs, and a kill -9 that
leaves a lock file behind), budgets too small for one step, memory, --resume with nothing to do,
output that reads well in a file, closed pipes, the umask, and UTF-16."""
import json
import os
import re
import resource
import shlex
import signal
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from charlm.store import checkpoint

from conftest import NAMES, Training, charlm_command, run_charlm
from tiny_models import make_model, save_model

ANSI = re.compile(r"\x1b\[")


def one_line_error(result, code, *words):
    """The command ended with exit code ``code`` and one line on stderr holding every word."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word.lower() in lines[0].lower(), lines[0]
    return lines[0]


def snapshot(path):
    """What must not change about a file: its bytes and its modification time."""
    return path.read_bytes(), os.stat(path).st_mtime_ns


@pytest.fixture
def model_file(tmp_path):
    return save_model(make_model(hidden=8, mode="stream"), str(tmp_path / "m.npz"))


@pytest.fixture
def trained(tmp_path, names_file):
    """A checkpoint of 6 steps, validated at its last step."""
    out = tmp_path / "trained.npz"
    result = run_charlm("train", names_file, "--out", out, "--hidden", 8, "--steps", 6,
                        "--eval-every", 3, "--quiet")
    assert result.returncode == 0, result.stderr
    return out


# ---- 1, 2: never over a file the run reads; report -o replaces only its own pages ---------------

def test_report_never_writes_over_its_checkpoint_or_its_text(tmp_path, model_file):
    text = tmp_path / "text.txt"
    text.write_text("the quick brown fox\n")
    before = snapshot(tmp_path / "m.npz"), snapshot(text)
    for target, what in ((model_file, "the checkpoint"), (text, "the --text file")):
        for force in ([], ["--force"]):
            result = run_charlm("report", "--model", model_file, "--text", text, "-o", target,
                                *force, cwd=tmp_path)
            one_line_error(result, 2, what, "never writes over")
    assert (snapshot(tmp_path / "m.npz"), snapshot(text)) == before
    assert run_charlm("info", model_file).returncode == 0


def test_report_replaces_only_a_page_it_wrote_unless_forced(tmp_path, model_file):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    result = run_charlm("report", "--model", model_file, "-o", notes, cwd=tmp_path)
    one_line_error(result, 2, "not a page charlm report wrote", "--force")
    assert notes.read_text() == "my notes\n"
    page = tmp_path / "page.html"
    assert run_charlm("report", "--model", model_file, "-o", page).returncode == 0
    again = run_charlm("report", "--model", model_file, "-o", page)      # its own page: replaced
    assert again.returncode == 0, again.stderr
    forced = run_charlm("report", "--model", model_file, "-o", notes, "--force")
    assert forced.returncode == 0, forced.stderr
    assert "charlm report" in notes.read_text()


def test_train_never_writes_over_its_corpus_even_with_force(tmp_path, names_file):
    before = snapshot(names_file)
    os.symlink(names_file, tmp_path / "link.npz")
    for out in (names_file, tmp_path / "link.npz", f"{tmp_path}/./names.txt"):
        for options in ([], ["--force"], ["--resume"]):
            result = run_charlm("train", names_file, "--out", out, "--steps", 1, *options)
            one_line_error(result, 2, "the corpus")
    assert snapshot(names_file) == before


# ---- 3: one writer per checkpoint ---------------------------------------------------------------

def test_a_second_run_on_the_same_out_is_refused_naming_the_first(tmp_path, names_file):
    out = tmp_path / "m.npz"
    first = Training(names_file, out, "--steps", "1000000", "--eval-every", "5",
                     "--patience", "0")
    first.wait_for(f"-> {out}")                 # the header: the lock is held from here on
    holder = (tmp_path / "m.npz.lock").read_text().split("\n")[0]
    assert holder == str(first.process.pid)
    for options in (["--force"], ["--resume"], []):
        second = run_charlm("train", names_file, "--out", out, "--steps", 3, "--hidden", 16,
                            *options)
        one_line_error(second, 6, "being written by another charlm run",
                       f"process {first.process.pid}")
    first.wait_for("bits/char)")                # the first run keeps training and saving
    first.process.send_signal(signal.SIGINT)
    code, _, stderr = first.finish()
    assert code == 130, stderr
    assert checkpoint.load(str(out), True).training.run.step >= 5
    assert not (tmp_path / "m.npz.lock").exists()
    step = checkpoint.load(str(out), True).training.run.step
    resumed = run_charlm("train", names_file, "--out", out, "--resume", "--steps", step + 2,
                         "--json")
    assert resumed.returncode == 0, resumed.stderr       # the lock went with the first run


def test_a_lock_left_by_a_killed_run_does_not_block(tmp_path, names_file):
    out = tmp_path / "m.npz"
    killed = Training(names_file, out, "--steps", "1000000", "--eval-every", "5",
                     "--patience", "0")
    killed.wait_for(f"-> {out}")
    killed.process.kill()                       # SIGKILL: no chance to remove its lock file
    killed.finish()
    assert (tmp_path / "m.npz.lock").exists()
    again = run_charlm("train", names_file, "--out", out, "--force", "--steps", 3, "--hidden", 8,
                       "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["steps"] == 3
    assert not (tmp_path / "m.npz.lock").exists()


USERS_LOCK_NAMED_FILES = {"a file of the user's": "my notes\n", "notes with a number first":
                          "2024\nmy budget notes\n", "an empty file": ""}


@pytest.mark.parametrize("kind", [*USERS_LOCK_NAMED_FILES, "a symbolic link", "the corpus"])
def test_a_file_at_the_lock_path_that_is_no_lock_is_left_alone(tmp_path, names_file, kind):
    """OUT.lock is written and removed only when it is charlm's: a user's file there (even one
    that starts with a number, or an empty one), a link to one, or the very corpus the run would
    read is refused before anything is written."""
    lock = tmp_path / "m.npz.lock"
    if kind == "a symbolic link":
        lock.symlink_to(names_file)
    elif kind == "the corpus":
        lock.write_bytes(names_file.read_bytes())
    else:
        lock.write_text(USERS_LOCK_NAMED_FILES[kind])
    target = lock.resolve()
    before = target.read_bytes()
    corpus = lock if kind == "the corpus" else names_file
    result = run_charlm("train", corpus, "--out", tmp_path / "m.npz", "--steps", 2,
                        "--hidden", 8)
    assert result.returncode == 2, result.stderr
    assert "m.npz.lock" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert lock.is_symlink() == (kind == "a symbolic link")
    assert target.read_bytes() == before and not (tmp_path / "m.npz").exists()


def test_an_output_that_is_a_link_is_written_through_it(tmp_path, names_file, trained):
    """--out naming a link to a checkpoint: the checkpoint is what --resume reads and writes, the
    link stays a link, and the file and its link share one lock."""
    from charlm.store.outputs import OutputLock
    (tmp_path / "runs").mkdir()
    real = tmp_path / "runs" / "real.npz"
    trained.rename(real)
    link = tmp_path / "link.npz"
    link.symlink_to(real)
    result = run_charlm("train", names_file, "--out", link, "--resume", "--steps", 9, "--quiet")
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and checkpoint.load(str(real), True).training.run.step == 9
    with OutputLock(str(real)):
        held = run_charlm("train", names_file, "--out", link, "--resume", "--steps", 12)
    assert held.returncode == 6 and "being written by another charlm run" in held.stderr
    assert checkpoint.load(str(real), True).training.run.step == 9
    ahead = tmp_path / "ahead.npz"                  # a link to a checkpoint still to come
    ahead.symlink_to(tmp_path / "runs" / "next.npz")
    ok = run_charlm("train", names_file, "--out", ahead, "--steps", 2, "--hidden", 8, "--quiet")
    assert ok.returncode == 0, ok.stderr
    assert ahead.is_symlink() and (tmp_path / "runs" / "next.npz").is_file()


def test_a_lock_file_appears_with_its_record_and_leaves_nothing_beside_it(tmp_path,
                                                                          monkeypatch):
    """The lock file is written and locked under another name, then linked into place: a run
    that finds it finds a whole record, never an empty file it would take for the user's."""
    from charlm.store import outputs
    seen = []
    real_link = os.link

    def link(source, target):
        seen.append(open(source, "rb").read())      # what appears at the lock's path
        real_link(source, target)

    monkeypatch.setattr(outputs.os, "link", link)
    lock = outputs.OutputLock(str(tmp_path / "m.npz")).acquire()
    assert outputs.LOCK_RECORD.fullmatch(seen[0])
    assert (tmp_path / "m.npz.lock").read_bytes() == seen[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz.lock"]
    lock.release()
    assert not list(tmp_path.iterdir())


def test_a_lock_taken_over_is_a_lock_the_next_run_can_take_over(tmp_path):
    """A stale lock (its holder killed) is rewritten from its start, so when this holder dies in
    turn its record is again one a later run recognises."""
    from charlm.store.outputs import OutputLock
    lock_path = tmp_path / "m.npz.lock"
    lock_path.write_text("4242\nsomehost\ncharlm train old.txt --out m.npz --seed 1\n")
    for _ in range(2):
        lock = OutputLock(str(tmp_path / "m.npz")).acquire()
        assert lock_path.read_bytes().split(b"\n")[0] == str(os.getpid()).encode()
        os.close(lock.fd)           # as a killed run: the lock let go, its file left behind
        lock.fd = None


def test_import_does_not_write_a_checkpoint_that_a_run_holds(tmp_path, model_file):
    from charlm.store.outputs import OutputLock
    exported = tmp_path / "m.safetensors"
    assert run_charlm("export", model_file, "-o", exported).returncode == 0
    target = tmp_path / "t.npz"
    with OutputLock(str(target)):                # as a training run holds its --out
        result = run_charlm("import", exported, "-o", target, "--force")
    one_line_error(result, 6, "being written by another charlm run")
    assert not target.exists()
    assert run_charlm("import", exported, "-o", target).returncode == 0


# ---- 4: a time budget too small for one step ----------------------------------------------------

@pytest.fixture
def random_text(tmp_path):
    """About 100,000 characters of stream text."""
    rng = np.random.default_rng(5)
    words = np.array(["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far"])
    paragraphs = [" ".join(rng.choice(words, 200)) + "." for _ in range(125)]
    path = tmp_path / "text.txt"
    path.write_text("\n\n".join(paragraphs) + "\n")
    return path


def test_a_budget_that_cannot_fit_a_step_and_a_validation_is_refused_with_the_least(
        tmp_path, random_text):
    out = tmp_path / "m.npz"
    result = run_charlm("train", random_text, "--out", out, "--hidden", 512, "--max-time",
                        "0.001s")
    line = one_line_error(result, 2, "--max-time 0.001s cannot fit one training step")
    least = re.search(r"give --max-time (\d+(?:\.\d+)?)s or more", line)
    assert least and float(least.group(1)) > 0.001, line
    assert not out.exists() and not (tmp_path / "m.npz.lock").exists()


def test_a_short_budget_trains_before_it_estimates_validation(tmp_path, random_text):
    # half the text held out: at the 10,000 chars/s that was assumed before any step ran, its
    # validation alone (about 50,000 characters) would have taken the whole budget
    result = run_charlm("train", random_text, "--out", tmp_path / "m.npz", "--hidden", 16,
                        "--val-frac", 0.5, "--max-time", "3s", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["steps"] >= 1 and summary["best_val_loss"] is not None


# ---- 5: memory ----------------------------------------------------------------------------------

def test_a_model_too_large_for_memory_is_refused_in_one_line(tmp_path, names_file):
    result = run_charlm("train", names_file, "--out", tmp_path / "m.npz", "--hidden", 8192,
                        "--layers", 16, "--steps", 1)
    line = one_line_error(result, 2, "needs about", "GB", "available")
    assert not (tmp_path / "m.npz").exists(), line


def test_the_memory_refusal_reads_the_address_space_limit(tmp_path, names_file):
    limit = 8_000_000 * 1024            # ulimit -v 8000000

    def limited():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    result = subprocess.run(charlm_command() + [
        "train", str(names_file), "--out", str(tmp_path / "m.npz"), "--hidden", "2048",
        "--layers", "16", "--steps", "1"], capture_output=True, text=True, preexec_fn=limited)
    one_line_error(result, 2, "needs about", "ulimit -v")
    assert "MemoryError" not in result.stderr


# ---- 6: --resume with nothing left to do --------------------------------------------------------

@pytest.mark.parametrize("options", [["--steps", "3"], ["--steps", "6"], ["--max-time", "0.001s"]])
def test_resume_with_its_target_reached_leaves_the_file_untouched(names_file, trained, options):
    before = snapshot(trained)
    result = run_charlm("train", names_file, "--out", trained, "--resume", *options)
    assert result.returncode == 0, result.stderr
    assert "nothing to train, the file is unchanged" in result.stdout
    assert snapshot(trained) == before
    summary = json.loads(run_charlm("train", names_file, "--out", trained, "--resume", *options,
                                    "--json").stdout)
    assert summary["stopped"].startswith("already ") and summary["steps"] == 6
    assert snapshot(trained) == before


def test_a_run_out_of_time_stays_done_and_a_resume_trains_to_its_own_target(names_file,
                                                                            tmp_path):
    """A run stopped by --max-time keeps room for its last validation, so it ends before the
    budget: resumed as it was, it still has nothing to do. --resume --steps N trains to step N
    whatever budget the run had, and says that budget no longer applies (on stderr, with --json
    too)."""
    out = tmp_path / "timed.npz"
    first = run_charlm("train", names_file, "--out", out, "--hidden", 8, "--max-time", "3s",
                       "--json")
    assert first.returncode == 0, first.stderr
    steps = json.loads(first.stdout)["steps"]
    assert json.loads(first.stdout)["stopped"] == "time"
    before = snapshot(out)
    again = run_charlm("train", names_file, "--out", out, "--resume", "--json")
    assert json.loads(again.stdout)["stopped"] == "already time" and snapshot(out) == before
    further = run_charlm("train", names_file, "--out", out, "--resume", "--steps", steps + 5,
                         "--json")
    summary = json.loads(further.stdout)
    assert summary["stopped"] == "steps" and summary["steps"] == steps + 5
    assert "--max-time 3s no longer apply" in further.stderr
    assert checkpoint.load(str(out)).config.max_time is None


# ---- 7: every output checked before any work ----------------------------------------------------

@pytest.mark.parametrize("command", [["train", "CORPUS", "--steps", "1", "--out"],
                                     ["report", "--model", "MODEL", "-o"]])
@pytest.mark.parametrize("target,words", [("/proc/x.npz", ["cannot write"]),
                                          ("/no/such/folder/x", ["there is no folder"]),
                                          ("FIFO", ["not a regular file"]),
                                          (".", ["is a folder"]),
                                          ("", ["is empty", "such as"]),
                                          ("new/", ["names a folder"])])
def test_an_output_that_cannot_be_written_is_refused_before_any_work(
        tmp_path, names_file, model_file, command, target, words):
    args = [str(names_file) if a == "CORPUS" else str(model_file) if a == "MODEL" else a
            for a in command]
    if target == "FIFO":    # a special file; never /dev/null, which a bug would destroy as root
        target = str(tmp_path / "fifo")
        os.mkfifo(target)
    result = run_charlm(*args, target, cwd=tmp_path)
    one_line_error(result, 2, *words)
    assert result.stdout == ""          # nothing was trained or built


# ---- 8: a closed pipe ----------------------------------------------------------------------------

def run_into_a_closed_pipe(*args, stream="stdout", cwd=None):
    """Run charlm with stdout (or stderr) a pipe whose reader has already gone."""
    read, write = os.pipe()
    os.close(read)
    try:
        other = subprocess.PIPE
        process = subprocess.run(charlm_command() + [str(a) for a in args], cwd=cwd,
                                 stdout=write if stream == "stdout" else other,
                                 stderr=write if stream == "stderr" else other, timeout=300)
    finally:
        os.close(write)
    return process


@pytest.mark.parametrize("args", [
    ["info", "MODEL"], ["info", "MODEL", "--json"], ["score", "--model", "MODEL", "abc"],
    ["score", "--model", "MODEL", "--per-char", "abc"], ["sample", "--model", "MODEL"],
    ["neurons", "--model", "MODEL", "the cat"], ["--help"], ["train", "--help"]])
def test_a_closed_stdout_ends_any_command_quietly_with_0(model_file, args):
    result = run_into_a_closed_pipe(*[model_file if a == "MODEL" else a for a in args])
    assert result.returncode == 0, result.stderr
    assert result.stderr == b"", result.stderr


def test_train_into_a_closed_pipe_saves_its_run_and_exits_0(tmp_path, names_file):
    out = tmp_path / "m.npz"
    result = run_into_a_closed_pipe("train", names_file, "--out", out, "--hidden", 8,
                                    "--steps", 4)
    assert result.returncode == 0, result.stderr
    assert checkpoint.load(str(out), True).training.run.step == 4
    quiet = run_into_a_closed_pipe("train", names_file, "--out", tmp_path / "e.npz",
                                   "--hidden", 8, "--steps", 4, stream="stderr")
    assert quiet.returncode == 0 and quiet.stdout == b""
    assert not (tmp_path / "e.npz.lock").exists()


def test_train_whose_stderr_reader_goes_mid_run_saves_and_exits_0(tmp_path, names_file):
    out = tmp_path / "m.npz"
    training = Training(names_file, out, "--steps", "1000000", "--eval-every", "5",
                        "--patience", "0")
    training.wait_for("bits/char)")             # training has begun and validated once
    training.process.stderr.close()             # `charlm train ... 2>&1 | head -3`
    stdout = training.process.stdout.read()
    code = training.process.wait()
    training.guard.cancel()
    assert code == 0 and stdout == ""
    assert checkpoint.load(str(out), True).training.run.step >= 5
    assert not (tmp_path / "m.npz.lock").exists()


# ---- 9: output that reads well in a file --------------------------------------------------------

def assert_reads_well(text):
    assert "\r" not in text and not ANSI.search(text), text
    for line in text.splitlines():
        assert line == line.rstrip(), repr(line)


def test_train_output_in_files_has_no_frames_no_padding_and_a_pasteable_resume(
        tmp_path, prose_file):
    folder = tmp_path / ("a folder with a rather long name to pass eighty columns" * 2)
    folder.mkdir()
    out = folder / "model.npz"
    training = Training(prose_file, out, "--steps", "1000000", "--eval-every", "5",
                     "--patience", "0")
    training.wait_for("bits/char)")
    training.process.send_signal(signal.SIGINT)
    code, stdout, stderr = training.finish()
    assert code == 130, stderr
    assert_reads_well(stdout)
    assert_reads_well(stderr)
    again = next(line for line in stdout.splitlines() if "Continue with:" in line)
    assert again.endswith(shlex.join(["charlm", "train", str(prose_file), "--out", str(out),
                                      "--resume"]))
    assert "validated in" in stderr and "%" not in stderr      # no progress bar frame
    finished = run_charlm("train", prose_file, "--out", out, "--resume", "--steps",
                          checkpoint.load(str(out), True).training.run.step + 2)
    assert finished.returncode == 0, finished.stderr
    assert_reads_well(finished.stdout)
    assert_reads_well(finished.stderr)
    summary = finished.stderr.strip().splitlines()[-1]
    assert "steps in this run" in summary and "chars/s" in summary


@pytest.mark.parametrize("labelled", [True, "files"])
def test_the_resume_command_gives_the_corpus_as_it_was_given(tmp_path, labelled):
    """What the resume command holds besides --out and --resume: the corpus with --labels, or
    the --label NAME=FILE options, and an --encoding other than UTF-8. A run resumes with them."""
    from charlm.cli.train import _corpus_args
    text = {"ça": ["Émile", "Zoé", "Anaïs"] * 20, "la": ["Noël", "Inès", "Loïc"] * 20}
    if labelled is True:
        corpus = tmp_path / "names.tsv"
        corpus.write_text("".join(f"{k}\t{n}\n" for k in text for n in text[k]),
                          encoding="latin-1")
        given, args = True, [str(corpus), "--labels"]
    else:
        for k in text:
            (tmp_path / f"{k}.txt").write_text("\n".join(text[k]) + "\n", encoding="latin-1")
        given = [(k, str(tmp_path / f"{k}.txt")) for k in text]
        corpus, args = None, [a for k, f in given for a in ("--label", f"{k}={f}")]
    assert _corpus_args(corpus and str(corpus), given, "latin-1") == [*args, "--encoding",
                                                                      "latin-1"]
    assert _corpus_args(corpus and str(corpus), given, "UTF-8") == args
    out = tmp_path / "m.npz"
    first = run_charlm("train", *args, "--encoding", "latin-1", "--out", out, "--steps", 2,
                       "--hidden", 8, "--quiet")
    assert first.returncode == 0, first.stderr
    again = run_charlm("train", *_corpus_args(corpus and str(corpus), given, "latin-1"), "--out",
                       out, "--resume", "--steps", 4, "--quiet")
    assert again.returncode == 0, again.stderr
    assert checkpoint.load(str(out), True).training.run.step == 4


def test_info_and_prepare_in_a_file_read_well(tmp_path, trained, prose_file):
    shown = run_charlm("info", trained)
    assert shown.returncode == 0, shown.stderr
    assert_reads_well(shown.stdout)
    assert "validation history" in shown.stdout
    prepared = run_charlm("prepare", prose_file, "--force")
    assert prepared.returncode == 0, prepared.stderr
    assert prepared.stderr == ""                        # no progress bar frame
    assert_reads_well(prepared.stdout)


def test_score_per_char_and_neurons_in_a_file_are_plain_text(model_file):
    text = "the quick brown fox jumps over the lazy dog and on " * 3
    scored = run_charlm("score", "--model", model_file, "--per-char", text)
    assert scored.returncode == 0, scored.stderr
    assert_reads_well(scored.stdout)
    rows = [line for line in scored.stdout.splitlines() if line.startswith("│")]
    assert len(rows) == 1 and text[:30] in rows[0]      # the text cell is not wrapped
    per_char = [line.split() for line in scored.stdout.splitlines()
                if re.match(r"\s*\d+\s", line)]
    assert len(per_char) == len(text)
    assert [row[1] for row in per_char[:4]] == ["t", "h", "e", "␣"]
    assert all(float(row[2]) >= 0 for row in per_char)
    shown = run_charlm("neurons", "--model", model_file, text)
    assert shown.returncode == 0, shown.stderr
    assert_reads_well(shown.stdout)
    values = [line.split() for line in shown.stdout.splitlines()
              if re.match(r"\s*\d+\s+\S+\s+[+-]\d", line)]
    assert len(values) == len(text)
    as_json = json.loads(run_charlm("neurons", "--model", model_file, text, "--json").stdout)
    assert [float(v[-1]) for v in values] == pytest.approx(as_json["activations"], abs=1e-4)


# ---- 10: the umask ------------------------------------------------------------------------------

@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_checkpoints_and_reports_follow_the_umask(tmp_path, names_file, mask, mode):
    def masked():
        os.umask(mask)

    out, page = tmp_path / "m.npz", tmp_path / "m.html"
    for args in (["train", names_file, "--out", out, "--hidden", 8, "--steps", 2, "--quiet"],
                 ["report", "--model", out, "-o", page]):
        result = subprocess.run(charlm_command() + [str(a) for a in args], capture_output=True,
                                text=True, preexec_fn=masked)
        assert result.returncode == 0, result.stderr
    assert os.stat(out).st_mode & 0o777 == mode
    assert os.stat(page).st_mode & 0o777 == mode


def test_a_replaced_checkpoint_keeps_its_mode(tmp_path, names_file):
    out = tmp_path / "m.npz"
    assert run_charlm("train", names_file, "--out", out, "--hidden", 8, "--steps", 2,
                      "--quiet").returncode == 0
    os.chmod(out, 0o640)
    assert run_charlm("train", names_file, "--out", out, "--resume", "--steps", 4,
                      "--quiet").returncode == 0
    assert os.stat(out).st_mode & 0o777 == 0o640


# ---- 11: UTF-16 ---------------------------------------------------------------------------------

@pytest.mark.parametrize("encoding,hint", [("utf-16", "utf-16"), ("utf-16-le", "utf-16-le"),
                                           ("utf-32", "utf-32")])
def test_utf16_and_utf32_are_named_with_the_encoding_to_pass(tmp_path, encoding, hint):
    corpus = tmp_path / "names.txt"
    corpus.write_bytes(("\n".join(NAMES * 3) + "\n").encode(encoding))
    result = run_charlm("train", corpus, "--out", tmp_path / "m.npz", "--steps", 1)
    one_line_error(result, 3, f"--encoding {hint}")
    assert "binary" not in result.stderr
    trained = run_charlm("train", corpus, "--encoding", hint, "--out", tmp_path / "m.npz",
                         "--hidden", 8, "--steps", 2, "--quiet")
    assert trained.returncode == 0, trained.stderr


@pytest.mark.parametrize("encoding,written,words", [
    ("utf-16", "utf-16-le", "--encoding utf-16-le"),            # no byte-order mark
    ("punycode", "utf-8", "Invalid extended code point '\\n'")])  # a reason that holds a newline
def test_a_codec_that_refuses_the_text_outright_is_one_line(tmp_path, encoding, written, words):
    corpus = tmp_path / "names.txt"
    corpus.write_bytes(("\n".join(NAMES * 3) + "\n").encode(written))
    result = run_charlm("train", corpus, "--encoding", encoding, "--out", tmp_path / "m.npz",
                        "--steps", 1)
    one_line_error(result, 3, words)
    assert not (tmp_path / "m.npz").exists()


@settings(max_examples=60, deadline=None)
@given(text=st.text(st.characters(blacklist_characters="\0\ufeff", blacklist_categories=("Cs",)),
                    min_size=1, max_size=200),
       encoding=st.sampled_from(["utf-16", "utf-32"]))
def test_any_text_with_a_byte_order_mark_is_named_not_called_binary(tmp_path_factory, text,
                                                                    encoding):
    from charlm.errors import CorpusError
    from charlm.text.textfile import read_text
    path = tmp_path_factory.mktemp("bom") / "text.txt"
    path.write_bytes(text.encode(encoding))
    with pytest.raises(CorpusError, match=f"pass --encoding {encoding}$"):
        read_text(str(path))
    assert read_text(str(path), encoding) == text.replace("\r\n", "\n").replace("\r", "\n")


@settings(max_examples=50, deadline=None)
@given(moves=st.lists(st.tuples(st.integers(0, 2), st.booleans()), max_size=30))
def test_at_most_one_lock_holder_at_any_time(tmp_path_factory, moves):
    """Three would-be writers of one path take and let go of its lock in any order: at most one
    holds it at any time, a refusal names the holder's process, and a let-go lock can be taken."""
    from charlm.errors import OutputInUse
    from charlm.store.outputs import OutputLock
    path = str(tmp_path_factory.mktemp("lock") / "m.npz")
    locks = [OutputLock(path) for _ in range(3)]
    for who, take in moves:
        lock = locks[who]
        if not take:
            lock.release()
            continue
        if lock.fd is not None:
            continue
        others = [k for k, other in enumerate(locks) if other.fd is not None]
        if others:
            with pytest.raises(OutputInUse, match=f"process {os.getpid()}"):
                lock.acquire()
        else:
            lock.acquire()
        assert sum(other.fd is not None for other in locks) == 1
    for lock in locks:
        lock.release()
    assert not os.path.exists(path + ".lock")


def test_a_path_with_brackets_is_printed_as_it_is(tmp_path, names_file):
    """Paths are text, not rich markup: "[v2]" would otherwise vanish from the message, and
    "[/x]" would be a markup error."""
    (tmp_path / "a[").mkdir()
    out = tmp_path / "a[" / "x][v2].npz"            # written out: .../a[/x][v2].npz
    result = run_charlm("train", names_file, "--out", out, "--hidden", 8, "--steps", 2,
                        "--quiet")
    assert result.returncode == 0, result.stderr
    assert f"saved to {out}." in result.stdout.replace("\n", "")
    assert out.exists()
