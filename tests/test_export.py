"""`charlm export` and `charlm import` (docs/export.md), checked by the runtimes themselves.

For every cell, 1 and 3 layers, stream and lines mode (small random models with random biases,
tests/tiny_models.py): onnxruntime's log-probabilities along a held-out text, and those of the
PyTorch module that docs/export.md builds (its code is run from the page), agree with
`charlm score --per-char` within TOLERANCE per character, in one call and one token at a time with
the state fed back; a sample drawn in each runtime picks, at every step, the token that charlm's
own probabilities pick for the same uniform draw. Export then import, and import then export,
are bit for bit. Every bad input ends in one line, its exit code and no file.
"""
import json
import os
import re
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import safetensors.numpy
import torch
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings, strategies as st

import charlm
from charlm.cli import main
from charlm.config import Config
from charlm.errors import UsageError
from charlm.export import torch_state
from charlm.network.bidirectional import shapes_for
from charlm.network.engine import Engine
from charlm.network.stack import FlatArrays, init_parameters
from charlm.store import checkpoint
from charlm.store.checkpoint import Checkpoint
from charlm.text.vocab import Vocab

from conftest import run_charlm
from tiny_models import make_model, make_word_model, save_model

TOLERANCE = 1e-5
DOCS = Path(__file__).resolve().parent.parent / "docs" / "export.md"
# Held-out text: '!', 'é' and the digits are not in the models' vocabulary (scored as <UNK>).
TEXTS = {"stream": ["jumps over 3 quick brown dogs; the lazy fox is PACKED! é", "box of five"],
         "lines": ["Dozen jugs with a lazy fox!", "pack my box é"]}
CASES = [(cell, layers, mode) for cell in ("rnn", "gru", "lstm") for layers in (1, 3)
         for mode in ("stream", "lines")]
TORCH_CASES = [case for case in CASES if case[0] != "gru"]

torch.set_num_threads(1)


def case_id(case):
    return "-".join(map(str, case))


def invoke(*args):
    """The CLI in this process (fast), for the bad inputs; stdout and stderr apart."""
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def assert_one_line_error(result, code, pattern=""):
    stderr = result.stderr
    returncode = getattr(result, "exit_code", getattr(result, "returncode", None))
    assert returncode == code, (returncode, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert pattern.lower() in lines[0].lower(), lines[0]


def leftovers(folder):
    return sorted(p.name for p in Path(folder).iterdir() if p.name.startswith(".charlm"))


# ---- the models, charlm's reference figures, the exported files ------------------------------

@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("export")


@pytest.fixture(scope="module")
def models(folder):
    """case -> path of its checkpoint. Hidden 16 with 54 tokens: the LSTM's layer 0 exports as a
    one-hot embedding (V <= G*H), the RNN's and the GRU's as a table of W_x (V > G*H)."""
    paths = {}
    for i, (cell, layers, mode) in enumerate(CASES):
        model = make_model(cell=cell, hidden=16, layers=layers, mode=mode, seed=10 + i)
        name = case_id((cell, layers, mode))
        paths[(cell, layers, mode)] = save_model(model, folder / f"{name}.npz")
    return paths


@pytest.fixture(scope="module")
def scores(models):
    """case -> [(targets, per-char log-probs)] per text, from the installed `charlm score`."""
    out = {}
    for case, path in models.items():
        texts = TEXTS[case[2]]
        result = run_charlm("score", "--per-char", "--json", "--model", path, *texts)
        assert result.returncode == 0, result.stderr
        vocab = charlm.load(str(path)).vocab
        out[case] = []
        for text, r in zip(texts, json.loads(result.stdout)["results"]):
            targets = list(vocab.encode(text)) + ([0] if case[2] == "lines" else [])
            per_char = [c["log_prob"] for c in r["per_char"]]
            assert len(per_char) == len(targets)
            out[case].append((targets, np.array(per_char)))
    return out


@pytest.fixture(scope="module")
def onnx_files(models):
    """case -> the .onnx file that the installed `charlm export` wrote."""
    files = {}
    for case, path in models.items():
        target = path.with_suffix(".onnx")
        result = run_charlm("export", path, "-o", target, "--json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {"path": str(target), "format": "onnx",
                                             "bytes": target.stat().st_size}
        files[case] = target
    return files


@pytest.fixture(scope="module")
def torch_files(models):
    """case -> the .safetensors file of Model.export (the Python API)."""
    files = {}
    for case in TORCH_CASES:
        target = models[case].with_suffix(".safetensors")
        assert charlm.load(str(models[case])).export(str(target)) == "torch"
        files[case] = target
    return files


def docs_module():
    """The PyTorch module and loader of docs/export.md, run from the page itself."""
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    code = next(b for b in blocks if "class CharLM" in b)
    namespace = {}
    exec(compile(code, str(DOCS), "exec"), namespace)
    return namespace


# ---- the runtimes ------------------------------------------------------------------------------

class OnnxRunner:
    def __init__(self, path):
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.meta = json.loads(self.session.get_modelmeta().custom_metadata_map["charlm"])
        self.states = [i.name for i in self.session.get_inputs() if i.name != "tokens"]

    def zero_state(self, batch):
        return [np.zeros((self.meta["num_layers"], batch, self.meta["hidden_size"]), np.float32)
                for _ in self.states]

    def run(self, tokens, state):
        """(log_probs (B, T, V) float64, new state) for tokens (B, T)."""
        feeds = {"tokens": np.asarray(tokens, np.int64), **dict(zip(self.states, state))}
        log_probs, *state = self.session.run(None, feeds)
        return log_probs.astype(np.float64), state


class TorchRunner:
    def __init__(self, path):
        self.model, self.meta = docs_module()["load_charlm"](str(path))

    def zero_state(self, batch):
        return None

    def run(self, tokens, state):
        with torch.no_grad():
            log_probs, state = self.model(torch.as_tensor(np.asarray(tokens, np.int64)), state)
        return log_probs.double().numpy(), state


def runner(kind, case, onnx_files, torch_files):
    return OnnxRunner(onnx_files[case]) if kind == "onnx" else TorchRunner(torch_files[case])


def per_char_whole(run, targets_list):
    """Every text in one call, as one batch padded at the end with <EOS>: [log p per target]."""
    width = max(len(t) for t in targets_list)
    tokens = np.zeros((len(targets_list), width), np.int64)     # <EOS> first, padding after
    for row, targets in enumerate(targets_list):
        tokens[row, 1:len(targets)] = targets[:-1]
    log_probs, _ = run.run(tokens, run.zero_state(len(targets_list)))
    return [log_probs[row, np.arange(len(t)), t] for row, t in enumerate(targets_list)]


def per_char_stepped(run, targets):
    """One token at a time, the state fed back."""
    state, token, out = run.zero_state(1), 0, []
    for target in targets:
        log_probs, state = run.run([[token]], state)
        out.append(log_probs[0, 0, target])
        token = target
    return np.array(out)


# ---- agreement ---------------------------------------------------------------------------------

def check_agreement(run, reference):
    whole = per_char_whole(run, [t for t, _ in reference])
    worst = 0.0
    for (targets, expected), got in zip(reference, whole):
        worst = max(worst, np.abs(got - expected).max())
    targets, expected = reference[0]
    worst = max(worst, np.abs(per_char_stepped(run, targets) - expected).max())
    assert worst <= TOLERANCE, worst
    return worst


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_onnxruntime_agrees_with_charlm_score(case, scores, onnx_files):
    run = OnnxRunner(onnx_files[case])
    assert run.meta["mode"] == case[2] and run.meta["vocab"] == charlm.load(
        str(onnx_files[case].with_suffix(".npz"))).vocab.tokens
    print(f"onnx {case_id(case)} max |diff| {check_agreement(run, scores[case]):.2e}")


@pytest.mark.parametrize("case", TORCH_CASES, ids=case_id)
def test_pytorch_agrees_with_charlm_score(case, scores, torch_files):
    run = TorchRunner(torch_files[case])
    assert run.meta["mode"] == case[2]
    print(f"torch {case_id(case)} max |diff| {check_agreement(run, scores[case]):.2e}")


def test_the_onnx_graph_uses_the_standard_operators(onnx_files):
    for case, path in onnx_files.items():
        model = onnx.load(str(path))
        onnx.checker.check_model(model, full_check=True)
        ops = {node.op_type for node in model.graph.node}
        assert {"RNN": "rnn", "GRU": "gru", "LSTM": "lstm"}.keys() & ops == {case[0].upper()}
        assert "Gather" in ops and [i.name for i in model.graph.input][0] == "tokens"
        dims = [d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim]
        assert dims == ["batch", "time"]
        assert [o.name for o in model.graph.output][0] == "log_probs"


@pytest.mark.parametrize("kind, case", [("onnx", c) for c in CASES if c[1] == 3]
                         + [("torch", c) for c in TORCH_CASES if c[1] == 3],
                         ids=lambda v: v if isinstance(v, str) else case_id(v))
def test_a_sample_drawn_in_the_runtime_is_charlms(kind, case, models, onnx_files, torch_files):
    """The runtime draws 60 tokens by inverse CDF with seeded uniform draws, the state fed back;
    charlm's probabilities after the same prefix pick the same token for every draw (a draw
    closer than TOLERANCE to a boundary of charlm's cumulative probabilities is ambiguous and
    left out: there are none or nearly none)."""
    run = runner(kind, case, onnx_files, torch_files)
    rng = np.random.default_rng(5)
    state, token, drawn, draws = run.zero_state(1), 0, [], rng.random(60)
    for u in draws:
        log_probs, state = run.run([[token]], state)
        cdf = np.cumsum(np.exp(log_probs[0, 0]))
        token = int(np.searchsorted(cdf, u * cdf[-1], side="right"))
        drawn.append(token)
    model = charlm.load(str(models[case]))
    engine = Engine(model.network)
    x = np.array([0] + drawn[:-1], np.int32)[:, None]
    reference = np.exp(engine.log_softmax(x, engine.zero_state(1))[:, 0])   # (60, V)
    ambiguous = 0
    for t, u in enumerate(draws):
        cdf = np.cumsum(reference[t])
        if np.abs(cdf - u * cdf[-1]).min() < TOLERANCE:
            ambiguous += 1
            continue
        assert int(np.searchsorted(cdf, u * cdf[-1], side="right")) == drawn[t], t
    assert ambiguous <= 2


# ---- round trips --------------------------------------------------------------------------------

def bits(a):
    return np.ascontiguousarray(a).view(np.uint8)


@pytest.mark.parametrize("case", [c for c in TORCH_CASES if c[2] == "lines"], ids=case_id)
def test_export_then_import_is_bit_for_bit(case, tmp_path, models):
    exported, back = tmp_path / "m.safetensors", tmp_path / "back.npz"
    again = tmp_path / "again.safetensors"
    for args in (("export", models[case], "-o", exported), ("import", exported, "-o", back),
                 ("export", back, "--to", "torch", "-o", again)):
        result = run_charlm(*args)
        assert result.returncode == 0, result.stderr
    original, imported = checkpoint.load(str(models[case])), checkpoint.load(str(back))
    assert imported.vocab.tokens == original.vocab.tokens
    for field in ("cell", "hidden_size", "num_layers", "mode"):
        assert getattr(imported.config, field) == getattr(original.config, field)
    assert imported.weights.shapes == original.weights.shapes
    assert np.array_equal(bits(imported.weights.flat), bits(original.weights.flat))
    first, second = safetensors.numpy.load_file(exported), safetensors.numpy.load_file(again)
    assert first.keys() == second.keys()
    assert all(np.array_equal(bits(first[k]), bits(second[k])) for k in first)
    same = [run_charlm("score", "--json", "--per-char", "--model", m, TEXTS["lines"][0]).stdout
            for m in (models[case], back)]
    assert same[0] == same[1]


def test_a_pytorch_model_trained_elsewhere_imports_and_agrees(tmp_path):
    """An nn.LSTM with its own 5-wide embedding and both biases, saved by PyTorch without
    metadata: imported with --vocab and --mode, charlm score gives the module's log-probs."""
    namespace = docs_module()
    tokens = ["<EOS>", "<UNK>"] + list("abcdeilmnorst ")
    torch.manual_seed(0)
    module = namespace["CharLM"]("lstm", len(tokens), 5, 12, 2)
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(-0.6, 0.6)
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in module.state_dict().items()},
              tmp_path / "gpu.safetensors")
    (tmp_path / "vocab.json").write_text(json.dumps(tokens))
    result = run_charlm("import", tmp_path / "gpu.safetensors", "-o", tmp_path / "gpu.npz",
                        "--vocab", tmp_path / "vocab.json", "--mode", "lines", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["cell"] == "lstm"
    text = "seminar room tools"
    score = run_charlm("score", "--per-char", "--json", "--model", tmp_path / "gpu.npz", text)
    assert score.returncode == 0, score.stderr
    got = np.array([c["log_prob"] for c in json.loads(score.stdout)["results"][0]["per_char"]])
    ids = [tokens.index(ch) for ch in text]
    with torch.no_grad():
        log_probs, _ = module.eval()(torch.tensor([[0] + ids]))
    expected = log_probs[0].double().numpy()[np.arange(len(ids) + 1), ids + [0]]
    assert np.abs(got - expected).max() <= TOLERANCE
    sample = run_charlm("sample", "--model", tmp_path / "gpu.npz", "--num", "2", "--seed", "1")
    assert sample.returncode == 0, sample.stderr
    config = json.loads(run_charlm("info", tmp_path / "gpu.npz", "--json").stdout)["config"]
    assert (config["weight_drop"], config["cold_starts"], config["ema_decay"]) == (0, 0, 0)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cell=st.sampled_from(["rnn", "lstm"]), hidden=st.integers(1, 6),
       layers=st.integers(1, 3), extra=st.integers(0, 30), seed=st.integers(0, 2**31))
def test_state_dict_round_trip_is_exact_for_any_shape(cell, hidden, layers, extra, seed):
    """Both sides of the embedding choice (V <= G*H and V > G*H), any sizes, signed zeros."""
    vocab = Vocab(["<EOS>", "<UNK>"] + [chr(ord("a") + k) for k in range(extra)])
    config = Config(cell=cell, hidden_size=hidden, num_layers=layers, mode="stream", dropout=0.0)
    weights = FlatArrays(shapes_for(config, len(vocab)))
    rng = np.random.default_rng(seed)
    weights.flat[:] = rng.normal(size=weights.flat.size).astype(np.float32)
    weights.flat[rng.random(weights.flat.size) < 0.1] = -0.0
    ckpt = Checkpoint(config, vocab, weights)
    state = torch_state.state_dict(ckpt)
    back = torch_state.checkpoint_from_state(state, {}, "x", vocab=vocab.tokens)
    assert np.array_equal(bits(back.weights.flat), bits(weights.flat))


# ---- bad input ---------------------------------------------------------------------------------

@pytest.fixture
def small(tmp_path):
    return save_model(make_model(cell="lstm", hidden=4, layers=1), tmp_path / "small.npz")


def test_export_refuses_a_file_that_is_not_a_checkpoint(tmp_path):
    (tmp_path / "notes.npz").write_text("not a model")
    assert_one_line_error(invoke("export", tmp_path / "notes.npz", "-o", tmp_path / "m.onnx"), 4,
                          "not a charlm checkpoint")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.npz"]


@pytest.mark.parametrize("args, pattern", [
    (["--to", "keras"], "--to"),
    (["-o", "model.bin"], "cannot tell the format"),
    (["--to", "onnx", "-o", "model.safetensors"], "--to onnx writes .onnx, but model.safetensors"),
    (["-o", "no/such/folder/m.onnx"], "there is no folder"),
    (["-o", "."], "it is a folder"),
    (["-o", "m.safetensors.npz"], "the extension of charlm's checkpoints"),
    (["--to", "torch", "-o", "m.npz"], "the extension of charlm's checkpoints"),
])
def test_export_refuses_bad_options_in_one_line(tmp_path, small, args, pattern):
    before = sorted(os.listdir(tmp_path))
    assert_one_line_error(invoke("export", small, *args), 2, pattern)
    assert sorted(os.listdir(tmp_path)) == before


def test_export_refuses_a_gru_to_torch_and_a_bidirectional_model(tmp_path):
    gru = save_model(make_model(cell="gru", hidden=4, layers=1), tmp_path / "gru.npz")
    assert_one_line_error(invoke("export", gru, "-o", tmp_path / "gru.safetensors"), 2,
                          "reset gate after the recurrent product")
    config = Config(cell="lstm", hidden_size=4, num_layers=1, mode="lines", dropout=0.0,
                    bidirectional=True)
    vocab = Vocab.from_text("abc", mode="lines")
    weights = FlatArrays(shapes_for(config, len(vocab)))
    init_parameters(weights, "lstm", np.random.default_rng(0))
    checkpoint.save(tmp_path / "bi.npz", Checkpoint(config, vocab, weights))
    for target in ("bi.onnx", "bi.safetensors"):
        assert_one_line_error(invoke("export", tmp_path / "bi.npz", "-o", tmp_path / target), 2,
                              "bidirectional")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bi.npz", "gru.npz"]


def test_export_never_replaces_a_file_without_force(tmp_path, small):
    target = tmp_path / "m.onnx"
    target.write_bytes(b"mine")
    assert_one_line_error(invoke("export", small, "-o", target), 2, "--force")
    assert target.read_bytes() == b"mine"
    assert invoke("export", small, "-o", target, "--force").exit_code == 0
    assert target.read_bytes() != b"mine"


def test_the_python_export_never_replaces_a_file_without_force(tmp_path, small):
    model = charlm.load(str(small))
    target = tmp_path / "m.onnx"
    target.write_bytes(b"mine")
    with pytest.raises(UsageError, match="--force"):
        model.export(str(target))
    assert target.read_bytes() == b"mine"
    before = small.read_bytes()
    with pytest.raises(UsageError, match="the checkpoint this run reads"):
        model.export(str(small), to="torch", force=True)
    assert small.read_bytes() == before
    assert model.export(str(target), force=True) == "onnx" and target.read_bytes() != b"mine"


def test_a_word_model_exports_its_token_kind_and_import_refuses_it(tmp_path, small):
    words = save_model(make_word_model(hidden=4), tmp_path / "words.npz")
    for model, kind in ((small, "chars"), (words, "words")):
        target = tmp_path / f"{kind}.safetensors"
        assert invoke("export", model, "-o", target).exit_code == 0
        with safetensors.safe_open(target, framework="numpy") as f:
            meta = json.loads(f.metadata()["charlm"])
        assert meta["tokens"] == kind
        assert meta["vocab"] == charlm.load(str(model)).vocab.tokens
    assert_one_line_error(invoke("import", tmp_path / "words.safetensors", "-o",
                                 tmp_path / "back.npz"), 4, "a model of words, not characters")
    assert not (tmp_path / "back.npz").exists() and not leftovers(tmp_path)


def labelled_model(path):
    """A lines-mode model of text given one of two labels, its label tokens after the characters
    as training puts them, with random weights."""
    from charlm.text.labels import tokens
    plain = make_model(hidden=4, layers=1, mode="lines")
    vocab = Vocab(plain.vocab.tokens + tokens(["odd", "even"][::-1]))
    config = Config(cell="lstm", hidden_size=4, num_layers=1, mode="lines", dropout=0.0,
                    labels=["even", "odd"], label_counts=[3, 7])
    params = FlatArrays(charlm.network.stack.parameter_shapes("lstm", len(vocab), 4, 1))
    init_parameters(params, "lstm", np.random.default_rng(4))
    return save_model(charlm.api.Model(Checkpoint(config, vocab, params)), path)


def test_a_labelled_model_exports_its_labels_and_imports_with_them(tmp_path):
    """The metadata lists the tokens never to draw (<UNK> and the label tokens) and the labels
    with their counts; import gives back a model that classifies and samples by label as the
    checkpoint it came from does. Labels that do not fit the vocabulary are refused."""
    model = labelled_model(tmp_path / "labelled.npz")
    target, back = tmp_path / "labelled.safetensors", tmp_path / "back.npz"
    assert invoke("export", model, "-o", target).exit_code == 0
    with safetensors.safe_open(target, framework="numpy") as f:
        meta = json.loads(f.metadata()["charlm"])
    vocab = charlm.load(str(model)).vocab.tokens
    assert [vocab[i] for i in meta["never_drawn"]] == ["<UNK>", "<label:even>", "<label:odd>"]
    assert meta["labels"] == ["even", "odd"] and meta["label_counts"] == [3, 7]
    assert invoke("import", target, "-o", back).exit_code == 0
    original, imported = charlm.load(str(model)), charlm.load(str(back))
    assert imported.labels == ["even", "odd"]
    assert imported.classify(["the fox", "a dog"]) == original.classify(["the fox", "a dog"])
    assert (imported.sample(label="odd", num=3, length=10, seed=2)
            == original.sample(label="odd", num=3, length=10, seed=2))
    meta["labels"] = ["even", "other"]
    rewrite(target, metadata={"format": "pt", "charlm": json.dumps(meta)})
    assert_one_line_error(invoke("import", target, "-o", tmp_path / "bad.npz"), 4,
                          "labels in its metadata do not fit")
    assert not (tmp_path / "bad.npz").exists()


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, small, monkeypatch):
    target = tmp_path / "m.onnx"
    target.write_bytes(b"old")

    def disk_full(fd):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "fsync", disk_full)
    assert_one_line_error(invoke("export", small, "-o", target, "--force"), 2, "no space left")
    assert target.read_bytes() == b"old" and not leftovers(tmp_path)


@pytest.fixture
def exported(tmp_path, small):
    path = tmp_path / "small.safetensors"
    charlm.load(str(small)).export(str(path))
    return path


def rewrite(path, change=None, metadata=None):
    """The state dict at path, changed (change(arrays) in place), saved with metadata."""
    arrays = safetensors.numpy.load_file(path)
    with safetensors.safe_open(path, framework="numpy") as f:
        meta = f.metadata()
    if change:
        change(arrays)
    safetensors.numpy.save_file(arrays, path, metadata=meta if metadata is None else metadata)
    return path


@pytest.mark.parametrize("change, pattern", [
    (lambda a: a.pop("rnn.bias_hh_l0"), "missing the key 'rnn.bias_hh_l0'"),
    (lambda a: a.update({"out.bias": a["out.bias"][:-1]}), "'out.bias' has shape"),
    (lambda a: a.update({"rnn.weight_hh_l0": a["rnn.weight_hh_l0"][:8]}), "2 gate blocks"),
    (lambda a: a.update({"rnn.weight_hh_l0": a["rnn.weight_hh_l0"][:, :3]}), "(G*H, H)"),
    (lambda a: a.update({"rnn.weight_ih_l0": a["rnn.weight_ih_l0"][:, 1:]}),
     "'rnn.weight_ih_l0' has shape (16, 15)"),
    (lambda a: a.update({"decoder.extra": a["out.bias"]}), "decoder.extra"),
    (lambda a: a.update({"rnn.weight_hh_l0_reverse": a["rnn.weight_hh_l0"]}), "bidirectional"),
    (lambda a: a.update({"out.bias": a["out.bias"].astype(np.int32)}), "not a float"),
])
def test_import_refuses_a_state_dict_that_does_not_fit(tmp_path, exported, change, pattern):
    rewrite(exported, change)
    assert_one_line_error(invoke("import", exported, "-o", tmp_path / "m.npz"), 4, pattern)
    assert not (tmp_path / "m.npz").exists() and not leftovers(tmp_path)


def test_import_refuses_a_gru_and_a_file_that_is_not_safetensors(tmp_path, exported):
    gru = torch.nn.GRU(3, 4)
    from safetensors.torch import save_file
    save_file({f"rnn.{k}": v for k, v in gru.state_dict().items()}, tmp_path / "gru.safetensors")
    assert_one_line_error(invoke("import", tmp_path / "gru.safetensors"), 4,
                          "reset gate after the recurrent product")
    (tmp_path / "text.safetensors").write_text("hello")
    assert_one_line_error(invoke("import", tmp_path / "text.safetensors"), 4, "not a readable")
    assert_one_line_error(invoke("import", tmp_path / "none.safetensors"), 4, "no file")
    (tmp_path / "m.onnx").write_bytes(b"\x08\x08")
    assert_one_line_error(invoke("import", tmp_path / "m.onnx"), 4, "is an ONNX file")
    assert not any(p.suffix == ".npz" for p in tmp_path.iterdir() if p.name != "small.npz")


def test_import_refuses_misleading_names_and_an_unknown_mode(tmp_path, small, exported):
    assert_one_line_error(invoke("import", small), 2, "named as a charlm checkpoint")
    for name in ("m.onnx", "m.safetensors"):
        assert_one_line_error(invoke("import", exported, "-o", tmp_path / name), 2,
                              "import writes a charlm checkpoint")
    with pytest.raises(UsageError, match="the mode must be stream or lines, not 'bogus'"):
        charlm.import_model(str(exported), mode="bogus")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.npz", "small.safetensors"]


def test_a_mistyped_model_is_named_not_its_default_output(tmp_path):
    (tmp_path / "typo.onnx").write_bytes(b"mine")
    assert_one_line_error(invoke("export", tmp_path / "typo.npz"), 4, "no checkpoint at")
    assert (tmp_path / "typo.onnx").read_bytes() == b"mine"


def test_import_gives_the_float32_hint_for_a_bfloat16_state_dict_only(tmp_path, small,
                                                                       exported):
    from safetensors.torch import load_file, save_file
    half = tmp_path / "half.safetensors"
    save_file({k: v.to(torch.bfloat16) for k, v in load_file(exported).items()}, half)
    assert_one_line_error(invoke("import", half, "-o", tmp_path / "m.npz"), 4,
                          "holds bfloat16 tensors ('embed.weight'), which charlm cannot read: "
                          "convert the state dict to float32 first")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(exported.read_bytes()[:-5])
    (tmp_path / "notes.txt").write_text("hello")
    for path in (cut, tmp_path / "notes.txt"):      # a .npz: refused by its name (below)
        result = invoke("import", path, "-o", tmp_path / "m.npz")
        assert_one_line_error(result, 4, f"{path} is not a readable .safetensors file (")
        said = result.stderr.partition(str(path))[2]     # the folder's name holds "float32"
        assert "bfloat16" not in said and "float32" not in said
    assert not (tmp_path / "m.npz").exists() and not leftovers(tmp_path)


def test_import_refuses_a_vocabulary_that_does_not_fit(tmp_path, exported):
    vocab_file = tmp_path / "vocab.json"
    vocab_file.write_text(json.dumps(["<EOS>", "<UNK>", "a", "b"]))
    out = tmp_path / "m.npz"
    assert_one_line_error(invoke("import", exported, "-o", out, "--vocab", vocab_file), 2,
                          "has 4 tokens")
    rewrite(exported, metadata={"charlm": json.dumps({"vocab": ["<EOS>", "<UNK>", "a"]})})
    assert_one_line_error(invoke("import", exported, "-o", out), 4, "has 3 tokens")
    rewrite(exported, metadata={})
    assert_one_line_error(invoke("import", exported, "-o", out), 2, "--vocab")
    assert not out.exists() and not leftovers(tmp_path)


def test_import_never_replaces_a_checkpoint_without_force(tmp_path, small, exported):
    before = small.read_bytes()
    assert_one_line_error(invoke("import", exported, "-o", small), 2, "--force")
    assert small.read_bytes() == before
    assert invoke("import", exported, "-o", small, "--force").exit_code == 0


@pytest.mark.parametrize("package, command, extra", [
    ("onnx", ["export", "{model}", "-o", "{dir}/m.onnx"], "charlm[onnx]"),
    ("safetensors", ["export", "{model}", "-o", "{dir}/m.safetensors"], "charlm[torch]"),
    ("safetensors", ["import", "{dir}/m.safetensors"], "charlm[torch]"),
])
def test_without_the_extra_one_line_names_it(tmp_path, small, package, command, extra):
    hidden = tmp_path / "hidden"
    (hidden / package).mkdir(parents=True)
    (hidden / package / "__init__.py").write_text("raise ImportError('not installed')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(hidden)] + sys.path))
    args = [a.format(model=small, dir=tmp_path) for a in command]
    result = run_charlm(*args, env=env)
    assert_one_line_error(result, 1, f"pip install '{extra}'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hidden", "small.npz"]
