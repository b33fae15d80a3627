"""Every path argument of every command, given the bad inputs a new user gives, through the
installed ``charlm`` command: each ends with one line on stderr, the exit code of its class
(docs/files.md), no traceback, and no file written or changed.

Three kinds of path, each tried with every bad input of its kind:
- text a command reads (a corpus, --file, --text, the corpus of sample's novelty check);
- checkpoints a command reads (MODEL, --model), and the files ``charlm import`` reads;
- files a command writes (train --out, report -o, export -o, import -o); a special file there is
  a FIFO in the test's folder, never a device such as /dev/null, which a writer that failed to
  refuse it would replace when the tests run as root.
``BAD_INPUTS`` lists every case; ``test_the_suite_counts_its_cases`` states the count per class
and prints it (``pytest -s``), the figure the issue's closing note gives."""
import collections
import json
import os
import zipfile

import numpy as np
import pytest

import charlm

from conftest import NAMES, run_charlm
from tiny_models import make_model, save_model

# ---- the paths: each a command line with PATH where the bad input goes -------------------------
# MODEL is a good checkpoint, STATE its export as a PyTorch state dict and CORPUS a good text, for
# the other arguments of the command.

TEXT_PATHS = {
    "train CORPUS": ["train", "PATH", "--out", "out.npz", "--steps", "1", "--hidden", "8"],
    "prepare CORPUS": ["prepare", "PATH"],
    "sample --corpus": ["sample", "--model", "MODEL", "--corpus", "PATH", "--novelty"],
    "score --file": ["score", "--model", "MODEL", "--file", "PATH"],
    "neurons --file": ["neurons", "--model", "MODEL", "--file", "PATH"],
    "gradients --file": ["gradients", "--model", "MODEL", "--file", "PATH"],
    "report --text": ["report", "--model", "MODEL", "--text", "PATH", "-o", "out.html"],
}
CHECKPOINT_PATHS = {
    "sample --model": ["sample", "--model", "PATH"],
    "score --model": ["score", "--model", "PATH", "abc"],
    "info MODEL": ["info", "PATH"],
    "fill --model": ["fill", "--model", "PATH", "a_c"],
    "neurons --model": ["neurons", "--model", "PATH", "abc"],
    "gradients --model": ["gradients", "--model", "PATH", "abc"],
    "report --model": ["report", "--model", "PATH", "-o", "out.html"],
    "train --resume --out": ["train", "CORPUS", "--out", "PATH", "--resume", "--steps", "9"],
    "export MODEL": ["export", "PATH", "-o", "out.onnx"],
}
IMPORT_PATHS = {
    "import FILE": ["import", "PATH", "-o", "imported.npz"],
}
OUTPUT_PATHS = {
    "train --out": ["train", "CORPUS", "--steps", "1", "--hidden", "8", "--out", "PATH"],
    "report -o": ["report", "--model", "MODEL", "-o", "PATH"],
    "export -o": ["export", "MODEL", "--to", "onnx", "-o", "PATH"],
    "import -o": ["import", "STATE", "-o", "PATH"],
}

# ---- the bad inputs of each kind: name -> (how to make it, exit code, words of the message) ----
# a maker gets the test's folder and returns the path to give (a file it wrote, or not)


def missing(folder):
    return str(folder / "no-such-file.txt")


def in_missing_folder(folder):
    return str(folder / "no-such-folder" / "file.txt")


def a_folder(folder):
    (folder / "a-folder").mkdir()
    return str(folder / "a-folder")


def writes(name, data):
    def make(folder):
        (folder / name).write_bytes(data)
        return str(folder / name)
    make.__name__ = name
    return make


TEXT = "\n".join(NAMES * 3) + "\n"
TEXT_INPUTS = {
    "missing": (missing, {2, 3}, ["no-such-file.txt"]),
    "in a missing folder": (in_missing_folder, {2, 3}, ["no-such-folder"]),
    "a folder": (a_folder, {2, 3}, ["folder"]),
    "empty": (writes("empty.txt", b""), {2, 3}, ["empty"]),
    "binary": (writes("binary.bin", bytes(range(256)) * 4), {2, 3}, ["binary"]),
    "invalid UTF-8": (writes("latin1.txt", "café au lait\n".encode("latin-1") * 20), {2, 3},
                      ["utf-8", "offset"]),
    "UTF-16 with a BOM": (writes("utf16.txt", TEXT.encode("utf-16")), {3},
                          ["--encoding utf-16"]),
    "a device": (lambda folder: "/dev/null", {2, 3}, []),
}


def checkpoint_bytes(folder):
    path = folder / "good.npz"
    if not path.exists():
        save_model(make_model(hidden=8, chars=TEXT), str(path))
    return path.read_bytes()


def truncated(folder):
    data = checkpoint_bytes(folder)
    return writes("truncated.npz", data[:len(data) // 2])(folder)


def foreign_npz(folder):
    np.savez(folder / "foreign.npz", weights=np.zeros(3))
    return str(folder / "foreign.npz")


def pickled_npz(folder):
    np.savez(folder / "pickled.npz", format=np.array("charlm"), things=np.array([{}], object))
    return str(folder / "pickled.npz")


def newer_version(folder):
    path = folder / "newer.npz"
    path.write_bytes(checkpoint_bytes(folder))
    with np.load(path) as npz:
        arrays = dict(npz)
    arrays["format_version"] = np.array(99)
    np.savez(path, **arrays)
    return str(path)


def corrupted(folder):
    """A checkpoint whose zip entries are damaged in the middle (its CRC fails)."""
    data = bytearray(checkpoint_bytes(folder))
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(64)
    return writes("corrupted.npz", bytes(data))(folder)


def a_zip(folder):
    with zipfile.ZipFile(folder / "archive.zip", "w") as z:
        z.writestr("readme.txt", "hello")
    return str(folder / "archive.zip")


CHECKPOINT_INPUTS = {
    "missing": (missing, {4}, ["no-such-file.txt"]),
    "in a missing folder": (in_missing_folder, {4}, ["no-such-folder"]),
    "a folder": (a_folder, {4}, ["folder"]),
    "empty": (writes("empty.npz", b""), {4}, []),
    "a text file": (writes("text.npz", TEXT.encode()), {4}, ["not a charlm checkpoint"]),
    "an HTML page": (writes("page.html", b"<!DOCTYPE html><html></html>\n"), {4}, []),
    "truncated": (truncated, {4}, []),
    "corrupted": (corrupted, {4}, []),
    "a zip that is not an npz": (a_zip, {4}, []),
    "a foreign npz": (foreign_npz, {4}, ["not a charlm checkpoint"]),
    "pickled objects": (pickled_npz, {4}, []),
    "a newer format": (newer_version, {4}, ["newer"]),
    "a device": (lambda folder: "/dev/null", {4}, []),
}
IMPORT_INPUTS = {name: (make, {2, 3, 4}, words[:1] if name.startswith(("missing", "in a"))
                        else []) for name, (make, _, words) in CHECKPOINT_INPUTS.items()}


def a_fifo(folder):
    """A special file that a writer must not replace (a FIFO here: harmless if it were, unlike a
    device such as /dev/null, which a run as root would destroy)."""
    os.mkfifo(folder / "a-fifo")
    return str(folder / "a-fifo")


def existing_text(folder):
    return writes("notes.txt", b"my notes\n")(folder)


OUTPUT_INPUTS = {
    "a folder": (a_folder, {2}, ["folder"]),
    "in a missing folder": (in_missing_folder, {2}, ["there is no folder"]),
    "an unwritable folder": (lambda folder: "/proc/charlm-out", {2}, ["cannot write"]),
    "a special file": (a_fifo, {2}, ["not a regular file"]),
    "the file it reads": (lambda folder: "READ", {2}, ["reads"]),
    "an existing file, no --force": (existing_text, {2}, ["exists"]),
}

KINDS = {"text": (TEXT_PATHS, TEXT_INPUTS), "checkpoint": (CHECKPOINT_PATHS, CHECKPOINT_INPUTS),
         "import": (IMPORT_PATHS, IMPORT_INPUTS), "output": (OUTPUT_PATHS, OUTPUT_INPUTS)}
BAD_INPUTS = [(kind, path, bad) for kind, (paths, inputs) in KINDS.items()
              for path in paths for bad in inputs]


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "corpus.txt").write_text(TEXT)
    model = save_model(make_model(hidden=8, chars=TEXT), str(tmp_path / "model.npz"))
    charlm.load(model).export(str(tmp_path / "model.safetensors"))
    return tmp_path


def command_line(kind, path_name, bad, folder):
    paths, inputs = KINDS[kind]
    make, codes, words = inputs[bad]
    args = paths[path_name]
    if path_name == "sample --corpus":      # no --encoding to pass: a conversion instead
        words = [w.replace("--encoding ", "iconv -f ") for w in words]
    if path_name == "train --resume --out":
        codes = codes | {2}     # also an output: a path that cannot be one is a usage error
        if bad == "a device":
            make = a_fifo       # never /dev/null for a path that a run may write
    if path_name == "import -o" and bad == "the file it reads":
        words = ["import writes a charlm checkpoint"]   # a .safetensors name: refused as such
    given = make(folder)
    named = {"MODEL": "model.npz", "STATE": "model.safetensors", "CORPUS": "corpus.txt"}
    if given == "READ":         # an output that is the file the command reads
        given = str(folder / next(named[a] for a in args if a in named))
    args = [given if a == "PATH" else str(folder / named[a]) if a in named else a for a in args]
    return args, codes, words


def files_of(folder):
    """Every file under folder with its bytes and modification time (to see that none changed
    and none was added)."""
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            if not os.path.isfile(path):        # a FIFO: opening it would wait for a writer
                found[path] = os.stat(path).st_mode
                continue
            with open(path, "rb") as f:
                found[path] = (f.read(), os.stat(path).st_mtime_ns)
    return found


@pytest.mark.parametrize("kind,path_name,bad", BAD_INPUTS,
                         ids=[f"{kind}: {path} <- {bad}" for kind, path, bad in BAD_INPUTS])
def test_a_bad_path_ends_in_one_line_and_changes_nothing(folder, kind, path_name, bad):
    args, codes, words = command_line(kind, path_name, bad, folder)
    before = files_of(folder)
    result = run_charlm(*args, cwd=folder)
    lines = result.stderr.strip().splitlines()
    assert result.returncode in codes, (result.returncode, result.stdout, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word.lower() in lines[0].lower(), lines[0]
    assert files_of(folder) == before, lines[0]


def test_the_suite_counts_its_cases():
    """The count of bad inputs per kind (each bad input tried on every path of its kind)."""
    counts = collections.Counter(kind for kind, _, _ in BAD_INPUTS)
    per_class = collections.Counter((kind, bad) for kind, _, bad in BAD_INPUTS)
    print("\nbad inputs tried:", json.dumps({"total": len(BAD_INPUTS), "per kind": counts,
                                            "per class": {f"{k}: {b}": n for (k, b), n in
                                                          sorted(per_class.items())}}, indent=1))
    assert counts == {kind: len(paths) * len(inputs) for kind, (paths, inputs) in KINDS.items()}
    assert len(BAD_INPUTS) >= 150
