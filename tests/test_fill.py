"""charlm fill: each method's distributions against their definitions (the reference network, the
score of the text), the order of several blanks, the Python API and the command line."""
import json

import numpy as np
import pytest
from conftest import run_charlm
from reference import ReferenceNetwork, cloze_log_probs

import charlm
from charlm.network import bidirectional
from charlm.store import checkpoint
from charlm.config import Config
from charlm.errors import UsageError
from charlm.network.stack import FlatArrays, init_parameters, parameter_shapes
from charlm.text.vocab import UNK_ID, Vocab

CHARS = "abcdeno \n"
H, L = 8, 2


def random_model(folder, name, bidirectional_model, mode, cell="lstm", seed=0):
    """A saved model of random weights (float32, as checkpoints hold them) over CHARS."""
    vocab = Vocab(["<EOS>", "<UNK>"] + sorted(CHARS))
    shapes = (bidirectional.parameter_shapes if bidirectional_model else parameter_shapes)(
        cell, len(vocab), H, L)
    weights = FlatArrays(shapes)
    rng = np.random.default_rng(seed)
    init_parameters(weights, cell, rng)
    weights.flat += (0.3 * rng.standard_normal(weights.flat.size)).astype(np.float32)
    config = Config(cell=cell, hidden_size=H, num_layers=L, mode=mode, dropout=0.0,
                    bidirectional=bidirectional_model)
    path = folder / f"{name}.npz"
    checkpoint.save(path, checkpoint.Checkpoint(config, vocab, weights))
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    return {(bi, mode): random_model(folder, f"{mode}{int(bi)}", bi, mode)
            for bi in (True, False) for mode in ("lines", "stream")}


def char_probs(log_probs):
    """Renormalised over the characters (ids from 2 on): what fill reports."""
    p = np.exp(log_probs[2:] - log_probs[2:].max())
    return p / p.sum()


def reported(blank, vocab):
    """The full distribution a Blank reports (top = the whole vocabulary), in id order."""
    probs = dict(blank.top)
    return np.array([probs[c] for c in vocab.tokens[2:]])


@pytest.mark.parametrize("mode", ["lines", "stream"])
def test_bidirectional_fill_is_the_cloze_distribution(models, mode):
    """Left to right: the first blank with the second read as <UNK>, then the second with the
    first filled."""
    model = charlm.load(models[True, mode])
    text = "ba_ed_ne"
    result = model.fill(text, top=100)
    ids = model.vocab.encode(text)
    ids[[2, 5]] = UNK_ID
    first = char_probs(cloze_log_probs("lstm", model.network.params, ids)[2])
    np.testing.assert_allclose(reported(result.blanks[0], model.vocab), first, atol=1e-5)
    ids[2] = 2 + np.argmax(first)
    second = char_probs(cloze_log_probs("lstm", model.network.params, ids)[5])
    np.testing.assert_allclose(reported(result.blanks[1], model.vocab), second, atol=1e-5)
    filled = model.vocab.tokens[ids[2]], result.blanks[1].char
    assert result.text == f"ba{filled[0]}ed{filled[1]}ne"


@pytest.mark.parametrize("mode", ["lines", "stream"])
def test_rescoring_one_blank_is_the_text_probability(models, mode):
    """p(c | rest) ∝ P(text with c), the text's probability as `score` gives it."""
    model = charlm.load(models[False, mode])
    result = model.fill("de_an", top=100)
    candidates = model.vocab.tokens[2:]
    scores = np.array([s.log_prob for s in model.score(["de" + c + "an" for c in candidates])])
    np.testing.assert_allclose(reported(result.blanks[0], model.vocab), char_probs(
        np.concatenate([[0, 0], scores])), atol=1e-5)


def test_rescoring_several_blanks_reads_up_to_the_next_one(models):
    """Stream mode (no closing <EOS>): the first blank by the probability of the text up to the
    second blank, the second by that of the whole text with the first filled."""
    model = charlm.load(models[False, "stream"])
    result = model.fill("a_ba_e", top=100)
    candidates = model.vocab.tokens[2:]
    first = [model.score("a" + c + "ba").log_prob for c in candidates]
    np.testing.assert_allclose(reported(result.blanks[0], model.vocab),
                               char_probs(np.array([0, 0] + first)), atol=1e-5)
    chosen = result.blanks[0].char
    second = [model.score("a" + chosen + "ba" + c + "e").log_prob for c in candidates]
    np.testing.assert_allclose(reported(result.blanks[1], model.vocab),
                               char_probs(np.array([0, 0] + second)), atol=1e-5)


def test_left_only_is_the_next_character_prediction(models):
    model = charlm.load(models[False, "lines"])
    result = model.fill("n_d_", left_only=True, top=100)
    reference = ReferenceNetwork("lstm", model.network.params)
    ids = model.vocab.encode(result.text)
    log_probs = reference.run(np.concatenate([[0], ids])[:, None])["log_probs"][:, 0]
    for blank in result.blanks:
        expected = char_probs(log_probs[blank.position])
        np.testing.assert_allclose(reported(blank, model.vocab), expected, atol=1e-5)
        assert blank.char == model.vocab.tokens[2 + np.argmax(expected)]


def test_api_shapes_and_unknown_characters(models):
    model = charlm.load(models[True, "lines"])
    one = model.fill("b_x")
    assert one.input == "b_x" and len(one.text) == 3 and one.unknown == ["x"]
    assert [b.position for b in one.blanks] == [1] and len(one.blanks[0].top) == 3
    top = one.blanks[0].top
    assert top[0] == (one.blanks[0].char, one.blanks[0].prob)
    assert [p for _, p in top] == sorted((p for _, p in top), reverse=True)
    several = model.fill(["a_", "_b_"], blank="_", top=1)
    assert [len(r.blanks) for r in several] == [1, 2] and len(several[1].blanks[0].top) == 1
    with pytest.raises(UsageError, match="no blank"):
        model.fill("abc")
    with pytest.raises(UsageError, match="--left-only"):
        model.fill("a_", left_only=True)
    for bad in (dict(blank="__"), dict(top=0)):
        with pytest.raises(UsageError):
            model.fill("a_", **bad)


# ---- the command line --------------------------------------------------------------------------

def test_json_output(models):
    done = run_charlm("fill", "ba?e", "?nd?", "--model", models[False, "lines"], "--blank", "?",
                      "--top", 2, "--json")
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)["results"]
    assert [r["input"] for r in results] == ["ba?e", "?nd?"]
    for r in results:
        assert "?" not in r["text"] and len(r["text"]) == len(r["input"])
        for b in r["blanks"]:
            assert set(b) == {"position", "char", "prob", "top"}
            assert r["text"][b["position"]] == b["char"] and r["input"][b["position"]] == "?"
            assert len(b["top"]) == 2 and b["top"][0] == [b["char"], b["prob"]]
    assert [b["position"] for b in results[1]["blanks"]] == [0, 3]


def test_terminal_output(models):
    done = run_charlm("fill", "b_d", "--model", models[True, "stream"])
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines[0]) == 3 and lines[0][0] == "b" and lines[0][2] == "d"
    assert lines[1].strip().startswith("1:") and lines[1].count("%") == 3


@pytest.mark.parametrize("args,code,words", [
    (["abc"], 2, "no blank"),
    ([], 2, "nothing to fill"),
    (["a_", "--blank", "ab"], 2, "--blank"),
    (["a_", "--top", "0"], 2, "--top"),
    (["a_", "--model", "missing.npz"], 4, "no checkpoint"),
    (["a_", "--left-only", "--model", "BI"], 2, "--left-only"),
])
def test_bad_input_is_one_line(models, args, code, words):
    args = [str(models[True, "lines"]) if a == "BI" else a for a in args]
    if "--model" not in args:
        args += ["--model", models[False, "lines"]]
    done = run_charlm("fill", *args)
    assert done.returncode == code
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0]
