"""Scoring: the definition against a hand computation, its bookkeeping (per-char sums, <EOS>,
unknown characters, batching, files), its agreement with the reference network (tests/reference.py),
the training pass and what ``sample`` draws, and clean errors for bad inputs."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from charlm.store import checkpoint
from charlm.scoring import passes, scorer
from charlm.api import Model, load
from charlm.store.checkpoint import Checkpoint
from charlm.cli import main
from charlm.config import Config
from charlm.errors import CorpusError, UsageError
from charlm.network.engine import Engine
from charlm.network.stack import FlatArrays, init_parameters, parameter_shapes
from charlm.text.vocab import Vocab
from reference import ReferenceNetwork

REPO = Path(__file__).resolve().parent.parent
TEXT = "the cat sat on a mat; a dog ran to its bed.\nAnna and Bob.\n"


def make_model(cell="lstm", mode="lines", hidden=8, layers=2, text=TEXT, seed=0):
    vocab = Vocab.from_text(text)
    params = FlatArrays(parameter_shapes(cell, len(vocab), hidden, layers))
    init_parameters(params, cell, np.random.default_rng(seed))
    config = Config(cell=cell, hidden_size=hidden, num_layers=layers, mode=mode, dropout=0.0)
    return Model(Checkpoint(config, vocab, params))


def save_model(path, model):
    checkpoint.save(path, model.checkpoint)
    return str(path)


def log_softmax(z):
    z = z - z.max()
    return z - np.log(np.exp(z).sum())


# ---- the definition ------------------------------------------------------------------------------

def hand_model(mode):
    """A 1-layer RNN, H = 2, vocabulary <EOS> <UNK> a b, with chosen weights."""
    vocab = Vocab(["<EOS>", "<UNK>", "a", "b"])
    params = FlatArrays(parameter_shapes("rnn", 4, 2, 1))
    params["layers.0.W_x"][:] = [[0.5, -0.5], [0.0, 0.0], [1.0, 0.25], [-0.75, 1.5]]
    params["layers.0.W_h"][:] = [[0.5, -1.0], [0.25, 0.75]]
    params["layers.0.b"][:] = [0.1, -0.2]
    params["out.W"][:] = [[1.0, -1.0, 2.0, 0.5], [-0.5, 0.0, 1.0, -2.0]]
    params["out.b"][:] = [0.0, -3.0, 0.5, 0.25]
    config = Config(cell="rnn", hidden_size=2, num_layers=1, mode=mode, dropout=0.0)
    return Model(Checkpoint(config, vocab, params))


def by_hand(ids, lines):
    """docs/model.md's definition in float64, step by step: h_t = tanh(x W_x + h W_h + b),
    softmax output."""
    w_x = np.array([[0.5, -0.5], [0.0, 0.0], [1.0, 0.25], [-0.75, 1.5]])
    w_h = np.array([[0.5, -1.0], [0.25, 0.75]])
    b = np.array([0.1, -0.2])
    w_y = np.array([[1.0, -1.0, 2.0, 0.5], [-0.5, 0.0, 1.0, -2.0]])
    b_y = np.array([0.0, -3.0, 0.5, 0.25])
    h = np.zeros(2)
    inputs, targets = [0] + ids, ids + ([0] if lines else [])
    terms = []
    for x, y in zip(inputs, targets):
        h = np.tanh(w_x[x] + h @ w_h + b)
        terms.append(log_softmax(h @ w_y + b_y)[y])
    return terms


@pytest.mark.parametrize("mode", ["lines", "stream"])
def test_hand_computed_case(mode):
    model = hand_model(mode)
    result = model.score("abba", per_char=True)
    terms = by_hand([2, 3, 3, 2], mode == "lines")
    assert result.num_tokens == len(terms) == 4 + (mode == "lines")
    assert result.log_prob == pytest.approx(sum(terms), abs=1e-5)
    assert [lp for _, lp in result.per_char] == pytest.approx(terms, abs=1e-6)
    assert [c for c, _ in result.per_char] == list("abba") + ["<EOS>"] * (mode == "lines")
    assert result.log2_prob == pytest.approx(result.log_prob / math.log(2))
    assert result.probability == pytest.approx(math.exp(result.log_prob))
    assert result.bits_per_char == pytest.approx(-result.log_prob / math.log(2) / len(terms))
    assert result.perplexity == pytest.approx(2 ** result.bits_per_char)


def test_unknown_characters_count_as_unk():
    model = hand_model("lines")
    result = model.score("aéb?é", per_char=True)
    assert result.unknown == ["é", "?"]
    assert result.log_prob == pytest.approx(sum(by_hand([2, 1, 3, 1, 1], True)), abs=1e-5)
    assert [c for c, _ in result.per_char][:5] == list("aéb?é")


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("mode", ["lines", "stream"])
def test_agrees_with_the_reference_network_and_the_training_pass(cell, mode):
    """Per-character scores against the reference network (tests/reference.py), and their mean
    against the training pass's loss (Network.loss_and_gradients: the mean NLL)."""
    model = make_model(cell, mode)
    text = "a dog sat on Anna."
    result = model.score(text, per_char=True)
    ids = list(model.vocab.encode(text))
    lines = mode == "lines"
    x = np.array([0] + ids[:len(ids) - 1 + lines], np.int32)[:, None]
    y = np.array(ids + [0] * lines, np.int32)[:, None]
    log_probs = ReferenceNetwork(cell, model.network.params).run(x)["log_probs"][:, 0]
    expected = log_probs[np.arange(len(y)), y[:, 0]]
    assert [lp for _, lp in result.per_char] == pytest.approx(expected.tolist(), abs=1e-5)
    net = model.network
    loss, count, _ = net.loss_and_gradients(x, y, net.zero_state(1), net.params.like())
    assert count == result.num_tokens == len(ids) + lines
    assert loss == pytest.approx(-result.log_prob / count, rel=1e-5)


def test_the_validation_helpers_score_as_score_does():
    """passes.lines_log_prob and passes.stream_log_prob (what training reports for its validation
    text) against Model.score on the same texts."""
    lines, stream = make_model("gru", "lines"), make_model("gru", "stream")
    texts = ["Anna", "a cat sat", "Bob and the dog", "a"]
    log_prob, tokens = passes.lines_log_prob(Engine(lines.network),
                                             [lines.vocab.encode(t) for t in texts])
    assert tokens == sum(len(t) + 1 for t in texts)
    assert log_prob == pytest.approx(sum(r.log_prob for r in lines.score(texts)), rel=1e-6)
    text = TEXT * 3                     # shorter than a segment: scored exactly, from the start
    log_prob, tokens = passes.stream_log_prob(Engine(stream.network), stream.vocab.encode(text))
    assert tokens == len(text)
    assert log_prob == pytest.approx(stream.score(text).log_prob, rel=1e-6)


def test_per_char_sums_to_total_and_lines_adds_the_eos_term():
    stream, lines = make_model(mode="stream"), make_model(mode="lines")   # the same weights
    for text in ["Anna", "the cat sat on a mat", "a\nb"]:
        s, l = stream.score(text, per_char=True), lines.score(text, per_char=True)
        assert sum(lp for _, lp in s.per_char) == pytest.approx(s.log_prob, abs=1e-9)
        assert sum(lp for _, lp in l.per_char) == pytest.approx(l.log_prob, abs=1e-9)
        assert l.per_char[-1][0] == "<EOS>" and s.per_char[-1][0] == text[-1]
        assert [lp for _, lp in l.per_char[:-1]] == pytest.approx([lp for _, lp in s.per_char])
        assert l.log_prob == pytest.approx(s.log_prob + l.per_char[-1][1], abs=1e-6)
        assert (s.num_tokens, l.num_tokens) == (len(text), len(text) + 1)


def test_a_batch_equals_one_text_at_a_time():
    """Enough texts of different lengths for the columns to be split across threads."""
    model = make_model("gru", "lines")
    rng = np.random.default_rng(1)
    texts = ["".join(rng.choice(list("abcdnot "), rng.integers(1, 30))) for _ in range(50)]
    together = model.score(texts, per_char=True)
    for text, result in zip(texts, together):
        alone = model.score(text, per_char=True)
        assert result.text == text
        # equal up to float32 rounding: BLAS sums in an order that depends on the shapes
        assert result.log_prob == pytest.approx(alone.log_prob, rel=1e-7)
        assert [lp for _, lp in result.per_char] == pytest.approx(
            [lp for _, lp in alone.per_char], rel=1e-6, abs=1e-7)


def test_empty_and_non_text_inputs_are_refused():
    model = make_model()
    for bad in ["", ["Anna", ""], "\ud800x", [3]]:
        with pytest.raises(UsageError):
            model.score(bad)


# ---- consistency with sampling -------------------------------------------------------------------

def test_probabilities_are_those_sampling_draws_from():
    """exp(per-char log-prob) is the softmax of the network's logits (the forward path's
    log_softmax, itself checked against the reference network), and the sampler at
    temperature 1 draws characters with those frequencies (it never draws <UNK>, so renormalised
    without it). Checked at the first step and after a prime."""
    sampler = pytest.importorskip("charlm.generation.sampler")
    model = make_model("lstm", "stream", text="abc\n")
    vocab = model.vocab
    num = 40_000
    for prime in ["", "ab"]:
        ids = [0] + list(vocab.encode(prime))
        x = np.array(ids, np.int32)[:, None]
        engine = Engine(model.network)
        log_probs = engine.log_softmax(x, engine.zero_state(1))[-1, 0]
        reference = ReferenceNetwork("lstm", model.network.params).run(x)["log_probs"][-1, 0]
        np.testing.assert_allclose(log_probs, reference, atol=1e-5)
        probs = np.exp(log_probs)
        for token in range(2, len(vocab)):       # each character's score at this position
            char = vocab.tokens[token]
            got = model.score(prime + char, per_char=True).per_char[len(prime)][1]
            assert got == pytest.approx(np.log(probs[token]), abs=1e-5)
        drawn = sampler.sample(model, num=num, length=1, prime=prime, temperature=1.0,
                               stop_at_eos=False, seed=5)
        expected = probs.copy()
        expected[1] = 0.0                       # <UNK> is never drawn
        expected /= expected.sum()
        newline = vocab.index["\n"]
        expected_newline = expected[0] + expected[newline]      # <EOS> is written as a newline
        for token in range(2, len(vocab)):
            char = vocab.tokens[token]
            p = expected_newline if token == newline else expected[token]
            freq = sum(d == char for d in drawn) / num
            assert abs(freq - p) < 5 * math.sqrt(p * (1 - p) / num) + 1e-3, (prime, char, freq, p)


# ---- files ---------------------------------------------------------------------------------------

def test_lines_file_equals_the_sum_of_its_lines(tmp_path, monkeypatch):
    model = make_model("lstm", "lines")
    lines = ["Anna", "Bob and a cat", "", "  ", "mat", "é?", "the dog"] * 30
    path = tmp_path / "lines.txt"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())    # CRLF, normalised as in training
    monkeypatch.setattr(scorer, "READ_BYTES", 7)                  # \r\n split across reads
    monkeypatch.setattr(passes, "LINE_BUFFER", 50)                # many sorted buffers
    calls = []
    result = scorer.score_file(model, str(path), progress=lambda d, t: calls.append((d, t)))
    kept = [line for line in lines if line.strip()]
    singles = model.score(kept)
    assert result.log_prob == pytest.approx(sum(r.log_prob for r in singles), rel=1e-7)
    assert result.num_tokens == sum(len(line) + 1 for line in kept)
    assert result.unknown == ["é", "?"] and result.file == str(path)
    assert calls[-1] == (path.stat().st_size,) * 2 and len(calls) > 2
    assert model.score_file(str(path)).log_prob == pytest.approx(result.log_prob, abs=1e-9)


def memoryless_model():
    """A 1-layer RNN with W_h = 0: each prediction depends on the previous character only, so
    any burn-in of one character or more reproduces the exact value."""
    model = make_model("rnn", "stream", hidden=8, layers=1)
    model.network.params["layers.0.W_h"][:] = 0.0
    return model


@pytest.mark.parametrize("length", [1, 5, 30, 31, 32, 95, 96, 97, 300, 1001])
def test_stream_segments_tile_the_file_exactly(tmp_path, monkeypatch, length):
    """Every character is counted once, whatever the length against segments and batches."""
    monkeypatch.setattr(passes, "MIN_SEGMENT", 16)
    monkeypatch.setattr(passes, "MAX_SEGMENT", 16)
    monkeypatch.setattr(passes, "BURN_IN", 3)
    monkeypatch.setattr(passes, "COLUMNS", 4)
    monkeypatch.setattr(scorer, "READ_BYTES", 50)
    model = memoryless_model()
    text = (TEXT * 20)[:length]
    path = tmp_path / "t.txt"
    path.write_text(text)
    result = scorer.score_file(model, str(path))
    assert result.num_tokens == len(text) and result.burn_in == 3
    assert result.log_prob == pytest.approx(model.score(text).log_prob, abs=1e-6)
    exact = scorer.score_file(model, str(path), exact=True)
    assert exact.log_prob == pytest.approx(model.score(text).log_prob, abs=1e-6)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_stream_burn_in_is_close_to_the_exact_value(tmp_path, monkeypatch, cell):
    """Segments of 64 characters with 64 of burn-in, against the exact sequential value: within
    0.1% of the bits per character (random weights; a trained model is measured in docs/results.md)."""
    monkeypatch.setattr(passes, "MIN_SEGMENT", 64)
    monkeypatch.setattr(passes, "MAX_SEGMENT", 64)
    monkeypatch.setattr(passes, "BURN_IN", 64)
    model = make_model(cell, "stream", hidden=32)
    text = TEXT * 40
    path = tmp_path / "prose.txt"
    path.write_text(text)
    batched = scorer.score_file(model, str(path))
    exact = scorer.score_file(model, str(path), exact=True)
    assert exact.burn_in == 0 and batched.num_tokens == exact.num_tokens == len(text)
    assert exact.log_prob == pytest.approx(model.score(text).log_prob, rel=1e-6)
    assert batched.bits_per_char == pytest.approx(exact.bits_per_char, rel=1e-3)


def test_file_reading_errors(tmp_path):
    model = make_model()
    with pytest.raises(CorpusError, match="no such file"):
        scorer.score_file(model, str(tmp_path / "missing.txt"))
    with pytest.raises(CorpusError, match="folder"):
        scorer.score_file(model, str(tmp_path))
    (tmp_path / "empty.txt").write_text("\n \n")
    with pytest.raises(CorpusError, match="empty"):
        scorer.score_file(model, str(tmp_path / "empty.txt"))
    with pytest.raises(UsageError, match="encoding"):
        scorer.score_file(model, str(tmp_path / "empty.txt"), encoding="no-such-codec")


def test_invalid_utf8_reports_its_byte_offset_across_reads(tmp_path, monkeypatch):
    monkeypatch.setattr(scorer, "READ_BYTES", 4)
    path = tmp_path / "bad.txt"
    path.write_bytes("Anna é\n".encode() + b"Bo\xc3(b\n")       # \xc3 starts at offset 10
    with pytest.raises(CorpusError, match=r"0xc3 at offset 10"):
        scorer.score_file(make_model(), str(path))
    assert scorer.score_file(make_model(), str(path), encoding="latin-1").num_tokens == 14


# ---- the command ---------------------------------------------------------------------------------

def invoke(*args):
    return CliRunner().invoke(main, ["score", *map(str, args)], catch_exceptions=False)


def assert_one_line_error(result, code, pattern):
    assert result.exit_code == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and pattern in lines[0], lines


def test_command_json_and_table(tmp_path):
    model = make_model("lstm", "lines")
    path = save_model(tmp_path / "m.npz", model)
    (tmp_path / "names.txt").write_text("Anna\nBob\n")
    result = invoke("--model", path, "--json", "--per-char", "Anna", "Bé")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)["results"]
    assert [r["text"] for r in data] == ["Anna", "Bé"] and data[1]["unknown"] == ["é"]
    assert [c["char"] for c in data[0]["per_char"]] == list("Anna") + ["<EOS>"]
    for key in ("log_prob", "log2_prob", "probability", "bits_per_char", "perplexity"):
        assert data[0][key] == pytest.approx(getattr(model.score("Anna"), key))
    result = invoke("--model", path, "--json", "--file", tmp_path / "names.txt")
    data = json.loads(result.stdout)["results"]
    assert data[0]["file"].endswith("names.txt") and data[0]["num_tokens"] == 9
    assert "per_char" not in data[0]
    result = invoke("--model", path, "--per-char", "Anna", "Bé", "--file", tmp_path / "names.txt")
    assert result.exit_code == 0
    assert "bits/char" in result.stdout and "surprise" in result.stdout
    assert "not in the model's vocabulary" in result.stderr and "'é'" in result.stderr


def test_command_bad_inputs(tmp_path):
    path = save_model(tmp_path / "m.npz", make_model())
    (tmp_path / "bad.txt").write_bytes(b"ab\xffcd")
    (tmp_path / "empty.txt").write_bytes(b"")
    assert_one_line_error(invoke("--model", path), 2, "nothing to score")
    assert_one_line_error(invoke("--model", path, ""), 2, "empty text")
    assert_one_line_error(invoke("--model", path, "--file", tmp_path / "no.txt"), 3, "no such file")
    assert_one_line_error(invoke("--model", path, "--file", tmp_path), 3, "folder")
    assert_one_line_error(invoke("--model", path, "--file", tmp_path / "bad.txt"), 3,
                          "0xff at offset 2")
    assert_one_line_error(invoke("--model", path, "--file", tmp_path / "empty.txt"), 3, "empty")
    assert_one_line_error(invoke("--model", path, "--per-char", "--file", tmp_path / "empty.txt"),
                          2, "--per-char")
    assert_one_line_error(invoke("--model", tmp_path / "none.npz", "Anna"), 4, "no checkpoint")
    # options that would change nothing here
    for option, value, applies in [("--encoding", "latin-1", "--file PATH"), ("--seed", 5,
                                   "--windows N"), ("--num-windows", 5, "--windows N")]:
        assert_one_line_error(invoke("--model", path, "Anna", option, value), 2,
                              f"{option} applies to {applies}")
    assert_one_line_error(invoke("--model", path, "Anna", "--exact"), 2,
                          "--exact applies to --file PATH")


def test_python_dash_m_charlm_score(tmp_path):
    path = save_model(tmp_path / "m.npz", make_model("gru", "stream"))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    run = subprocess.run([sys.executable, "-m", "charlm", "score", "--model", path, "--json",
                          "a cat"], capture_output=True, text=True, cwd=tmp_path, env=env,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)["results"][0]
    assert result["log_prob"] == pytest.approx(load(path).score("a cat").log_prob, abs=1e-9)


def test_a_table_too_wide_for_the_terminal_becomes_blocks_with_every_figure():
    """Squeezed below its width, rich would cut the figures short (-78.1…); the rows come as
    blocks of "column: value" lines instead. A terminal wide enough keeps the table."""
    import io
    from rich.console import Console
    from charlm.cli.score import _fitted, _table
    model = make_model()
    results = model.score(["the cat", "a dog", "the cat sat on a mat and the dog ran to"])
    for width, table_kept in ((50, False), (80, True), (120, True)):
        console = Console(file=io.StringIO(), width=width, force_terminal=True, color_system=None)
        console.print(_fitted(console, _table(results, model)))
        shown = console.file.getvalue()
        assert ("┃" in shown) == table_kept and "…" not in shown
        for r in results:
            assert f"{r.log2_prob:.3f}" in shown and f"{r.perplexity:.2f}" in shown
