"""charlm fill: each method's distributions against their definitions (the reference network, the
score of the text), the order of several blanks, the Python API and the command line."""
import json

import numpy as np
import pytest
from conftest import run_charlm
from reference import ReferenceNetwork, cloze_log_probs
from tiny_models import make_word_model

import charlm
from charlm.store import checkpoint
from charlm.config import Config
from charlm.errors import UsageError
from charlm.network.stack import FlatArrays, init_parameters, parameter_shapes
from charlm.network.shapes import bidirectional_shapes
from charlm.scoring import fill
from charlm.text.vocab import UNK_ID, Vocab

CHARS = "abcdeno \n"
H, L = 8, 2


def random_model(folder, name, bidirectional_model, mode, cell="lstm", seed=0):
    """A saved model of random weights (float32, as checkpoints hold them) over CHARS."""
    vocab = Vocab(["<EOS>", "<UNK>"] + sorted(CHARS))
    shapes = (bidirectional_shapes if bidirectional_model else parameter_shapes)(
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
    filled = model.vocab.tokens[ids[2]], result.blanks[1].token
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


def test_rescoring_a_character_model_scores_every_character(models, monkeypatch):
    """The shortlist is a word model's: a character model's candidates are all its characters."""
    model = charlm.load(models[False, "stream"])
    monkeypatch.setattr(fill, "SHORTLIST", 3)
    result = model.fill("de_an", top=100)
    assert len(result.blanks[0].top) == len(model.vocab.tokens) - 2


def test_rescoring_several_blanks_reads_up_to_the_next_one(models):
    """Stream mode (no closing <EOS>): the first blank by the probability of the text up to the
    second blank, the second by that of the whole text with the first filled."""
    model = charlm.load(models[False, "stream"])
    result = model.fill("a_ba_e", top=100)
    candidates = model.vocab.tokens[2:]
    first = [model.score("a" + c + "ba").log_prob for c in candidates]
    np.testing.assert_allclose(reported(result.blanks[0], model.vocab),
                               char_probs(np.array([0, 0] + first)), atol=1e-5)
    chosen = result.blanks[0].token
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
        assert blank.token == model.vocab.tokens[2 + np.argmax(expected)]


def test_api_shapes_and_unknown_characters(models):
    model = charlm.load(models[True, "lines"])
    one = model.fill("b_x")
    assert one.input == "b_x" and len(one.text) == 3 and one.unknown == ["x"]
    assert [b.position for b in one.blanks] == [1] and len(one.blanks[0].top) == 3
    top = one.blanks[0].top
    assert top[0] == (one.blanks[0].token, one.blanks[0].prob) and one.blanks[0].char == top[0][0]
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


# ---- a word model: a run of blanks stands for a whole word -------------------------------------

WORD_TEXT = "the cat sat on the mat. the dog ran to the box; a cat ran to the mat!"


def word_probs(log_probs, vocab):
    """Renormalised over the vocabulary's words, 0 elsewhere: what a word model's fill reports."""
    fillers = vocab.fillers()
    p = np.where(fillers, np.exp(log_probs - log_probs[fillers].max()), 0.0)
    return p / p.sum()


def reported_words(blank, vocab):
    probs = dict(blank.top)
    return np.array([probs.get(t, 0.0) for t in vocab.tokens])


def test_a_word_model_s_blank_is_a_whole_word_by_the_cloze_distribution():
    model = make_word_model(WORD_TEXT, bidirectional=True, layers=2)
    result = model.fill("the __ sat on ___ mat.", top=1000)
    ids = model.vocab.encode("the x sat on x mat.")
    ids[[2, 8]] = UNK_ID
    first = word_probs(cloze_log_probs("lstm", model.network.params, ids)[2], model.vocab)
    np.testing.assert_allclose(reported_words(result.blanks[0], model.vocab), first, atol=1e-5)
    ids[2] = np.argmax(first)
    second = word_probs(cloze_log_probs("lstm", model.network.params, ids)[8], model.vocab)
    np.testing.assert_allclose(reported_words(result.blanks[1], model.vocab), second, atol=1e-5)
    words = [model.vocab.tokens[ids[2]], model.vocab.tokens[np.argmax(second)]]
    assert [b.token for b in result.blanks] == words
    assert result.text == f"the {words[0]} sat on {words[1]} mat."
    assert [b.position for b in result.blanks] == [4, 14]
    assert result.spans == [(4, 4 + len(words[0])), (12 + len(words[0]), 12 + len(words[0])
                                                     + len(words[1]))]
    assert all(t.isalpha() for b in result.blanks for t, _ in b.top)   # words, never " " or "."


@pytest.mark.parametrize("mode", ["lines", "stream"])
def test_rescoring_a_word_is_the_text_probability(mode):
    model = make_word_model(WORD_TEXT, mode=mode, layers=2)
    result = model.fill("a ___ ran to", top=1000)
    words = [t for t, ok in zip(model.vocab.tokens, model.vocab.fillers()) if ok]
    scores = {w: model.score(f"a {w} ran to").log_prob for w in words}
    expected = word_probs(np.array([scores.get(t, 0.0) for t in model.vocab.tokens]), model.vocab)
    np.testing.assert_allclose(reported_words(result.blanks[0], model.vocab), expected, atol=1e-5)


def test_rescoring_a_large_vocabulary_takes_the_likeliest_words_before_the_blank(monkeypatch):
    model = make_word_model(WORD_TEXT, layers=2)
    left = model.fill("the ___ ran", left_only=True, top=1000).blanks[0]
    monkeypatch.setattr(fill, "SHORTLIST", 3)
    result = model.fill("the ___ ran", top=1000).blanks[0]
    assert {t for t, _ in result.top} == {t for t, _ in left.top[:3]}
    scores = {t: model.score(f"the {t} ran").log_prob for t, _ in left.top[:3]}
    total = np.logaddexp.reduce(list(scores.values()))
    for t, p in result.top:
        assert p == pytest.approx(np.exp(scores[t] - total), rel=1e-5)


@pytest.mark.parametrize("text,words", [
    ("the ca___ sat", "part of a word"), ("___s", "part of a word"),
    ("don'___ go", "part of a word"),
    ("no blank", "mark each missing word"),
])
def test_a_word_model_refuses_a_blank_inside_a_word(text, words):
    with pytest.raises(UsageError, match=words):
        make_word_model(WORD_TEXT).fill(text)


def test_a_trained_word_model_fills_in_words_on_the_command_line(tmp_path):
    """A small word model of a grammar, both kinds, through the installed command: the verb that
    the rest of the sentence calls for."""
    from test_words import write_corpus
    corpus = write_corpus(tmp_path / "prose.txt")
    text = "The cat ___ on the mat. My friend ___ at a red box."
    for extra in ([], ["--bidirectional"]):
        trained = run_charlm("train", corpus, "--tokens", "words", *extra, "--hidden", 48,
                             "--layers", 1, "--steps", 120, "--batch-size", 8, "--seq-len", 24,
                             "--lr", 0.01, "--dropout", 0, "--out", tmp_path / "w.npz",
                             "--force", cwd=tmp_path)
        assert trained.returncode == 0, trained.stderr
        assert ("Fill in missing words with" in trained.stdout) == bool(extra)
        done = run_charlm("fill", text, "--model", tmp_path / "w.npz", "--json")
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)["results"][0]
        assert result["text"] == "The cat sat on the mat. My friend looked at a red box."
        assert [(b["position"], b["word"]) for b in result["blanks"]] == [(8, "sat"),
                                                                           (34, "looked")]
        shown = run_charlm("fill", text, "--model", tmp_path / "w.npz")
        assert shown.returncode == 0 and shown.stdout.splitlines()[0] == result["text"]
        assert shown.stdout.splitlines()[1].split()[:2] == ["8:", "sat"]
