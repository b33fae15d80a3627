"""Checkpoints: the spec's layout, atomic writes, and refusing anything damaged, foreign or unsafe."""
import io
import json
import os
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from charlm.store import checkpoint
from charlm.store.checkpoint import Checkpoint, TrainingState
from charlm.config import Config
from charlm.errors import CheckpointError
from charlm.network.stack import FlatArrays, init_parameters, parameter_shapes
from charlm.store.runstate import RunState
from charlm.text.vocab import Vocab

from conftest import run_charlm


def make_checkpoint(cell="gru", hidden=6, layers=2, with_state=True, mode="lines", carry=None):
    """A small checkpoint (batch size 50); ``carry`` replaces the carried state's shape
    (L, S, 4, H) in lines mode, (L, S, 50, H) in stream mode."""
    config = Config(cell=cell, hidden_size=hidden, num_layers=layers, mode=mode, dropout=0.0,
                    ema_decay=0.995)
    vocab = Vocab.from_text("hello world\n")
    weights = FlatArrays(parameter_shapes(cell, len(vocab), hidden, layers))
    init_parameters(weights, cell, np.random.default_rng(0))
    state = None
    if with_state:
        n = weights.flat.size
        S = 2 if cell == "lstm" else 1
        carry = carry or (layers, S, 4 if mode == "lines" else config.batch_size, hidden)
        moments = {"m": np.ones(n, np.float32), "v": np.zeros(n, np.float32),
                   "average": weights.flat + 2}
        state = TrainingState(weights.flat + 1, moments, np.zeros(carry, np.float32),
                              RunState(step=7))
    return Checkpoint(config, vocab, weights, state)


@pytest.fixture(scope="module")
def saved_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "m.npz"
    checkpoint.save(str(path), make_checkpoint())
    return path.read_bytes()


def write(tmp_path, data, name="m.npz"):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_round_trip(tmp_path, cell):
    original = make_checkpoint(cell)
    path = str(tmp_path / "m.npz")
    checkpoint.save(path, original)
    loaded = checkpoint.load(path, with_training_state=True)
    assert loaded.config == original.config
    assert loaded.vocab.tokens == original.vocab.tokens
    assert np.array_equal(loaded.weights.flat, original.weights.flat)
    assert np.array_equal(loaded.training.params, original.training.params)
    assert set(loaded.training.moments) == {"m", "v", "average"}
    assert np.array_equal(loaded.training.moments["average"], original.weights.flat + 2)
    assert loaded.training.run == RunState(step=7)
    assert loaded.training.carry.shape == original.training.carry.shape
    assert os.listdir(tmp_path) == ["m.npz"]             # no temporary file left behind


def test_an_optimizer_state_without_the_average_its_config_names_is_refused(tmp_path):
    original = make_checkpoint()
    del original.training.moments["average"]
    path = str(tmp_path / "m.npz")
    checkpoint.save(path, original)
    assert checkpoint.load(path).config.ema_decay == 0.995     # the weights alone still load
    with pytest.raises(CheckpointError, match=r"optimizer state \(m, v\) does not match .* "
                                              r"--ema-decay 0.995"):
        checkpoint.load(path, with_training_state=True)


def test_layout_is_readable_with_numpy_alone(tmp_path):
    path = str(tmp_path / "m.npz")
    checkpoint.save(path, make_checkpoint("lstm", hidden=5, layers=2))
    with np.load(path, allow_pickle=False) as npz:
        assert str(npz["format"]) == "charlm" and int(npz["format_version"]) == 1
        config = json.loads(str(npz["config"]))
        assert (config["cell"], config["hidden_size"], config["num_layers"], config["mode"]) == \
            ("lstm", 5, 2, "lines")
        vocab = list(npz["vocab"])
        assert vocab[:2] == ["<EOS>", "<UNK>"]
        V = len(vocab)
        assert npz["layers.0.W_x"].shape == (V, 20) and npz["layers.0.W_x"].dtype == np.float32
        assert npz["layers.1.W_x"].shape == (5, 20)
        assert npz["layers.1.W_h"].shape == (5, 20) and npz["layers.1.b"].shape == (20,)
        assert npz["out.W"].shape == (5, V) and npz["out.b"].shape == (V,)


def test_a_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    buffer = io.BytesIO()
    np.savez(buffer, format=np.array("charlm"), config=np.array([Exploit()], dtype=object))
    path = write(tmp_path, buffer.getvalue())
    with pytest.raises(CheckpointError, match="never unpickles"):
        checkpoint.load(path)
    assert not marker.exists()


def rewrite(tmp_path, saved_bytes, change):
    """A copy of the saved checkpoint with its arrays changed by change(dict)."""
    with np.load(io.BytesIO(saved_bytes), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    change(arrays)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return write(tmp_path, buffer.getvalue())


@pytest.mark.parametrize("change,message", [
    (lambda a: a.update(format_version=np.array(2)), "newer charlm"),
    (lambda a: a.update(format=np.array("pytorch")), "not a charlm checkpoint"),
    (lambda a: a.pop("format"), "not a charlm checkpoint"),
    (lambda a: a.update(config=np.array("{not json")), "unreadable config"),
    (lambda a: a.update(config=np.array('{"cell": "transformer", "hidden_size": 6}')), "unreadable config"),
    (lambda a: a.update(config=np.array(a["config"].item().replace('"num_layers": 2',
                                                                     '"num_layers": 1.5'))),
     "num_layers is 1.5, where a whole number belongs"),
    (lambda a: a.update(vocab=np.array(["a", "b"])), "invalid vocabulary"),
    (lambda a: a.pop("out.W"), "missing the weight 'out.W'"),
    (lambda a: a.update({"layers.1.W_h": np.zeros((6, 17), np.float32)}), "has shape"),
    (lambda a: a["out.b"].__setitem__(0, np.nan), "NaN"),
    (lambda a: a.update({"state.json": np.array("[1, 2]")}), "unreadable training state"),
    (lambda a: a.update(config=np.array(a["config"].item().replace('"dropout": 0.0',
                                                                     '"dropout": null'))),
     "unreadable config"),
    (lambda a: a.update({"state.json": np.array(json.dumps(
        {**json.loads(a["state.json"].item()), "best_val_loss": 1.5, "best_step": None}))}),
     "'best_step' has an invalid value"),
    (lambda a: a.update({"state.json": np.array(json.dumps(
        {**json.loads(a["state.json"].item()), "train_loss": -0.5}))}),
     "'train_loss' has an invalid value"),
    # a config far larger than its arrays: refused on the first array, before any allocation
    (lambda a: a.update(config=np.array(a["config"].item().replace('"num_layers": 2',
                                                                     '"num_layers": 16')
                                        .replace('"hidden_size": 6', '"hidden_size": 8192'))),
     "has shape"),
])
def test_bad_contents_are_refused_with_a_reason(tmp_path, saved_bytes, change, message):
    path = rewrite(tmp_path, saved_bytes, change)
    with pytest.raises(CheckpointError, match=message):
        checkpoint.load(path, with_training_state=True)


# the carried state (L, S, B, H) of a 2-layer GRU of 6 units, batch size 50
BAD_CARRIES = [
    ("lines", (3, 1, 4, 6)),        # a layer too many
    ("lines", (2, 1, 4, 7)),        # another hidden size
    ("lines", (2, 2, 4, 6)),        # an LSTM's (h, c)
    ("lines", (2, 1, 51, 6)),       # more columns than the batch size
    ("lines", (2, 1, 0, 6)),        # no column
    ("stream", (2, 1, 4, 6)),       # stream mode carries every column of the batch
    ("lines", (2, 1, 4)),           # not (L, S, B, H)
]


@pytest.mark.parametrize("mode,carry", BAD_CARRIES)
def test_a_carried_state_that_disagrees_with_the_config_is_refused(tmp_path, mode, carry):
    path = str(tmp_path / "m.npz")
    checkpoint.save(path, make_checkpoint(mode=mode, carry=carry))
    with pytest.raises(CheckpointError, match=r"'state\.carry' has shape"):
        checkpoint.load(path, with_training_state=True)
    assert checkpoint.load(path).training is None      # sample and score read only the weights


@pytest.mark.parametrize("mode,carry", [("lines", (2, 1, 50, 6)), ("lines", (2, 1, 1, 6)),
                                        ("stream", (2, 1, 50, 6))])
def test_a_carried_state_that_fits_is_loaded(tmp_path, mode, carry):
    path = str(tmp_path / "m.npz")
    checkpoint.save(path, make_checkpoint(mode=mode, carry=carry))
    assert checkpoint.load(path, with_training_state=True).training.carry.shape == carry


@pytest.mark.parametrize("mode,carry", [BAD_CARRIES[1], BAD_CARRIES[5]])
def test_commands_refuse_a_bad_carried_state_with_one_line(tmp_path, mode, carry):
    path = tmp_path / "m.npz"
    checkpoint.save(str(path), make_checkpoint(mode=mode, carry=carry))
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("hello world\n" * 20, encoding="utf-8")
    for args in (["info", path], ["train", corpus, "--out", path, "--resume", "--steps", "2"]):
        result = run_charlm(*args, cwd=tmp_path)
        assert result.returncode == 4, (args, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") \
            and "'state.carry' has shape" in lines[0], lines


@pytest.mark.parametrize("data,message", [
    (b"", "not an .npz file"),
    (b"PK\x03\x04 not really a zip", "truncated or corrupted"),
    (b"\x89HDF\r\n\x1a\n", "not an .npz file"),
    (b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", "not an .npz file"),
])
def test_foreign_files_are_refused(tmp_path, data, message):
    with pytest.raises(CheckpointError, match=message):
        checkpoint.load(write(tmp_path, data))


def test_missing_and_folder(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        checkpoint.load(str(tmp_path / "nope.npz"))
    with pytest.raises(CheckpointError, match="is a folder"):
        checkpoint.load(str(tmp_path))
    os.mkfifo(tmp_path / "pipe.npz")
    with pytest.raises(CheckpointError, match="not a regular file"):
        checkpoint.load(str(tmp_path / "pipe.npz"))


def test_a_file_that_cannot_be_opened_is_a_clean_error(tmp_path, monkeypatch):
    """As root no file mode refuses a read, so the refusal is the operating system's answer
    put in open's place."""
    path = write(tmp_path, b"PK\x03\x04")

    def refused(name, mode="r", *args, **kwargs):
        raise PermissionError(13, "Permission denied", name)
    monkeypatch.setattr(checkpoint, "open", refused, raising=False)
    with pytest.raises(CheckpointError, match=re.escape(f"cannot read {path}: Permission denied")):
        checkpoint.load(path)


FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(fraction=st.floats(0.0, 1.0, exclude_max=True))
def test_any_truncation_is_a_clean_error(tmp_path, saved_bytes, fraction):
    path = write(tmp_path, saved_bytes[:int(len(saved_bytes) * fraction)])
    with pytest.raises(CheckpointError):
        checkpoint.load(path, with_training_state=True)


@FUZZ
@given(data=st.data())
def test_any_bit_flip_is_a_clean_error_or_harmless(tmp_path, saved_bytes, data):
    """A flipped bit must never crash the loader. It is caught (CRC-32 of each entry, the checks on
    layout and values) or it lands where it changes nothing that is used (e.g. a zip timestamp)."""
    flips = data.draw(st.lists(st.integers(0, len(saved_bytes) * 8 - 1), min_size=1, max_size=3))
    damaged = bytearray(saved_bytes)
    for bit in flips:
        damaged[bit // 8] ^= 1 << (bit % 8)
    path = write(tmp_path, bytes(damaged))
    try:
        loaded = checkpoint.load(path, with_training_state=True)
    except CheckpointError:
        return
    original = make_checkpoint()
    assert np.array_equal(loaded.weights.flat, original.weights.flat)
    assert loaded.config == original.config


def test_a_failed_write_keeps_the_old_checkpoint(tmp_path):
    path = tmp_path / "m.npz"
    checkpoint.save(str(path), make_checkpoint())
    before = path.read_bytes()
    os.chmod(tmp_path, 0o500)
    try:
        if os.access(tmp_path, os.W_OK):
            pytest.skip("running as a user who can write to read-only folders (root)")
        with pytest.raises(CheckpointError, match="could not write.*unchanged"):
            checkpoint.save(str(path), make_checkpoint("lstm"))
    finally:
        os.chmod(tmp_path, 0o700)
    assert path.read_bytes() == before


def test_an_error_while_writing_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    checkpoint.save(str(path), make_checkpoint())
    before = path.read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    with pytest.raises(CheckpointError, match="No space left on device.*unchanged"):
        checkpoint.save(str(path), make_checkpoint("lstm"))
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.npz"]


def test_a_zip_member_that_is_not_an_array_is_no_entry(tmp_path, saved_bytes):
    """np.load hands back a member that is not an .npy array as bytes: no entry of a checkpoint."""
    import zipfile
    path = tmp_path / "m.npz"
    with zipfile.ZipFile(io.BytesIO(saved_bytes)) as source, zipfile.ZipFile(path, "w") as copy:
        for item in source.infolist():
            if item.filename == "format.npy":
                copy.writestr("format", b"charlm")
            else:
                copy.writestr(item.filename, source.read(item.filename))
    with pytest.raises(CheckpointError, match="no valid 'format' entry"):
        checkpoint.load(str(path))
