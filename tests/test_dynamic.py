"""Dynamic evaluation and nanoGPT's windowed figure (``charlm score --dynamic``, ``--windows``):
each segment scored before the model learns from it, a learning rate of 0 giving static scoring's
figure, the same figure from every run and thread count, the update held to a plain numpy
rewrite of its rule, the windows held to a window-by-window computation, and one-line errors."""
import json
import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from charlm.network.engine import Engine
from charlm.network.parallel import MAX_UNIT_WORKERS
from charlm.network.stack import Network
from charlm.scoring import dynamic, scorer
from charlm.scoring.options import Settings
from charlm.text.vocab import EOS_ID
from conftest import NAMES, run_charlm
from tiny_models import make_model, make_word_model, save_model

# a text with repeats inside and structure to learn, made here (no download)
rng = np.random.default_rng(7)
PIECE = " ".join(rng.choice(NAMES, 120)) + ".\n"
LINES = "\n".join(rng.choice(NAMES, 200)) + "\n"
CHARS = "".join(sorted(set("".join(NAMES) + " .\n")))


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def score_json(*args, env=None):
    done = run_charlm("score", "--json", *args, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["results"][-1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small stream-mode LSTM trained briefly on names run together (module-wide: trained
    once), and a text it has not read."""
    folder = tmp_path_factory.mktemp("trained")
    rng = np.random.default_rng(11)
    corpus = " ".join(rng.choice(NAMES, 6000)) + "\n"
    path = write(folder / "corpus.txt", corpus)
    model = str(folder / "model.npz")
    done = run_charlm("train", path, "--mode", "stream", "--hidden", 48, "--layers", 1,
                      "--steps", 300, "--val-frac", 0.05, "--seed", 1, "--out", model, "--quiet",
                      cwd=folder)
    assert done.returncode == 0, done.stderr
    held_out = write(folder / "held_out.txt", " ".join(rng.choice(NAMES, 400)) + "\n")
    return model, held_out


# ---- the held-out figures of a training run ------------------------------------------------

def test_train_reports_the_held_out_text_s_windowed_and_dynamic_figures(tmp_path):
    """train --val-windows N --val-dynamic gives the figures that score --windows N and
    score --dynamic give for a file of the held-out text (the last --val-frac of the corpus)."""
    corpus = " ".join(np.random.default_rng(3).choice(NAMES, 1500)) + "\n"
    path = write(tmp_path / "corpus.txt", corpus)
    model = str(tmp_path / "m.npz")
    done = run_charlm("train", path, "--mode", "stream", "--hidden", 24, "--steps", 40,
                      "--val-frac", 0.2, "--out", model, "--val-windows", 48, "--val-dynamic",
                      "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    held_out = write(tmp_path / "val.txt", corpus[int(len(corpus) * 0.8):])
    windowed = score_json("--model", model, "--file", held_out, "--windows", 48)
    adapted = score_json("--model", model, "--file", held_out, "--dynamic")
    assert summary["val_windowed_loss"] == pytest.approx(windowed["windowed_loss"], rel=1e-9)
    assert summary["val_windows"] == windowed["windows"]
    dynamic_loss = -adapted["log_prob"] / adapted["num_tokens"]
    assert summary["val_dynamic_loss"] == pytest.approx(dynamic_loss, rel=1e-9)
    assert summary["val_dynamic"] == adapted["dynamic"]
    assert summary["best_val_loss"] < summary["val_windowed_loss"]   # windows start cold


@pytest.mark.parametrize("args,words", [
    (["--mode", "lines", "--val-windows", 8], "stream mode"),
    (["--tokens", "words", "--val-dynamic"], "character model"),
    (["--bidirectional", "--val-windows", 8], "left-to-right"),
    (["--val-frac", 0, "--val-dynamic"], "holds none out"),
    (["--val-windows", 100000], "longer than one window"),
    (["--val-windows", -1], "must be >= 0"),
])
def test_held_out_figures_that_do_not_apply_are_refused_before_training(tmp_path, args, words):
    path = write(tmp_path / "corpus.txt", "\n".join(NAMES * 4) + "\n")
    done = run_charlm("train", path, "--hidden", 8, "--steps", 2, "--out", tmp_path / "m.npz",
                      "--mode", "stream", *args, cwd=tmp_path)     # a later --mode wins
    assert done.returncode == 2
    assert words in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "m.npz").exists()


# ---- dynamic evaluation --------------------------------------------------------------------------

@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("mode", ["stream", "lines"])
def test_learning_rate_zero_is_static_scoring(tmp_path, cell, mode):
    model = make_model(cell=cell, hidden=12, mode=mode, chars=CHARS)
    path = write(tmp_path / "text.txt", PIECE * 2 if mode == "stream" else LINES)
    static = scorer.score_file(model, path, exact=True)
    still = scorer.score_file(model, path, dynamic={"lr": 0.0, "segment": 37})
    assert still.num_tokens == static.num_tokens
    # the same sums in training's pass instead of the no-grad pass: float32 rounding apart
    assert still.log_prob == pytest.approx(static.log_prob, rel=1e-6)
    before = model.network.params.flat.copy()
    adapted = scorer.score_file(model, path, dynamic=True)
    assert adapted.log_prob != still.log_prob
    assert np.array_equal(model.network.params.flat, before)   # the trained weights are back


SMALL = make_model(cell="lstm", hidden=8, chars=CHARS)


@settings(max_examples=30, deadline=None)
@given(segment=st.integers(1, 300), start=st.integers(0, 200))
def test_at_learning_rate_zero_no_segment_length_changes_the_figure(segment, start):
    text = PIECE[start:start + 40 + segment % 97]
    static = SMALL.score(text)
    still = SMALL.score(text, dynamic={"lr": 0.0, "segment": segment})
    assert still.num_tokens == static.num_tokens
    assert still.log_prob == pytest.approx(static.log_prob, rel=1e-6)
    assert still.dynamic["segments"] == -(-len(text) // segment)


def test_learning_rate_zero_end_to_end(tmp_path, trained):
    model, text = trained
    exact = score_json("--model", model, "--file", text, "--exact")
    still = score_json("--model", model, "--file", text, "--dynamic", "--dynamic-lr", 0)
    default = score_json("--model", model, "--file", text)
    assert still["dynamic"]["lr"] == 0
    assert still["log_prob"] == pytest.approx(exact["log_prob"], rel=1e-6)
    assert still["bits_per_char"] == pytest.approx(default["bits_per_char"], abs=1e-4)


def test_each_segment_is_scored_before_the_model_learns_from_it():
    """Every segment's log-probability is the no-grad pass's under the weights as they were
    before that segment, from the state the segments before it left."""
    model = make_model(cell="lstm", hidden=12, chars=CHARS)
    net = model.network
    ids = np.concatenate([[EOS_ID], model.vocab.encode(PIECE[:400])]).astype(np.int32)
    settings = Settings(lr=3e-3, segment=41)
    engine = Engine(net)
    state = net.zero_state(1)
    with dynamic.Adapter(net, settings) as adapter:
        for x, y in dynamic.stream_segments(ids, settings.segment):
            expected = float(engine.log_probs(x, y, state.copy()).sum())
            log_prob, count, state = adapter.step(x, y, state)
            assert count == len(y)
            assert log_prob == pytest.approx(expected, rel=1e-6)
        assert adapter.steps == -(-(len(ids) - 1) // settings.segment)


def test_update_follows_its_rule():
    """The Adapter against the rule written out in numpy, with the gradients of the training
    network as every training step computes them (W_h^T products on a shard)."""
    model = make_model(cell="gru", hidden=10, chars=CHARS)
    net = model.network
    ids = np.concatenate([[EOS_ID], model.vocab.encode(PIECE[:300])]).astype(np.int32)
    s = Settings(lr=2e-3, segment=29, decay=0.05, rms_decay=0.9)
    trained_w = net.params.flat.copy()

    # the rule by hand, in float64, on a second network over a copy of the weights
    params = net.params.like()
    params.flat[:] = trained_w
    plain = Network(net.cell, net.vocab_size, net.hidden_size, net.num_layers, params)
    grads = params.like()
    w = trained_w.astype(np.float64)
    ms = np.zeros_like(w)
    state = plain.zero_state(1)
    expected = 0.0
    for k, (x, y) in enumerate(dynamic.stream_segments(ids, s.segment), start=1):
        params.flat[:] = w
        loss, count, state = plain.loss_and_gradients(x, y, state, grads)
        expected -= loss * count
        g = grads.flat.astype(np.float64)
        ms = s.rms_decay * ms + (1 - s.rms_decay) * g * g
        w = w - s.lr * g / (np.sqrt(ms / (1 - s.rms_decay ** k)) + s.eps)
        w = w + s.decay * (trained_w - w)

    with dynamic.Adapter(net, s) as adapter:
        got, tokens, _ = dynamic.adapt_sequence(adapter, ids)
        np.testing.assert_allclose(net.params.flat, w, rtol=1e-4, atol=1e-5)
    assert tokens == len(ids) - 1
    assert got == pytest.approx(expected, rel=1e-5)


def test_a_repeated_text_scores_much_better_the_second_time(tmp_path, trained):
    """A text of made-up words, new to the model, twice. Dynamic evaluation is causal, so the
    first copy scores as the text alone does, and the second copy's figure is the difference."""
    model, _ = trained
    rng = np.random.default_rng(3)
    letters = sorted(set("".join(NAMES)))
    words = ["".join(rng.choice(letters, rng.integers(3, 8))) for _ in range(40)]
    text = " ".join(rng.choice(words, 300)) + "\n"
    once = write(tmp_path / "once.txt", text)
    twice = write(tmp_path / "twice.txt", text * 2)
    n = len(text)

    def bits(*options):
        """bits/char of the first copy and of the second."""
        a = score_json("--model", model, "--file", once, *options)
        b = score_json("--model", model, "--file", twice, *options)
        assert b["num_tokens"] == 2 * n
        return -a["log2_prob"] / n, -(b["log2_prob"] - a["log2_prob"]) / n

    static_first, static_second = bits("--exact")
    dynamic_first, dynamic_second = bits("--dynamic")
    assert static_second == pytest.approx(static_first, rel=0.05)     # static: no memory of it
    assert dynamic_first < static_first                               # it adapts as it reads
    assert dynamic_second < 0.9 * static_second                       # most where it repeats
    assert dynamic_second < 0.95 * dynamic_first


def test_the_same_run_gives_the_same_figure_with_any_thread_count(tmp_path, trained):
    model, text = trained
    runs = [score_json("--model", model, "--file", text, "--dynamic",
                       env=dict(os.environ, CHARLM_THREADS=str(threads)))
            for threads in (1, 2, 2, 3)]
    assert len({r["log_prob"] for r in runs}) == 1
    assert runs[0]["dynamic"] == {"lr": Settings.lr, "segment": Settings.segment,
                                  "decay": Settings.decay, "rms_decay": Settings.rms_decay,
                                  "eps": Settings.eps, "segments": runs[0]["dynamic"]["segments"]}
    assert runs[0]["dynamic"]["segments"] == -(-runs[0]["num_tokens"] // Settings.segment)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("mode", ["stream", "lines"])
def test_hidden_units_split_among_workers_give_the_same_figure(tmp_path, monkeypatch, cell, mode):
    """200 units on one worker or two (dynamic.Adapter.workers; a third thread adds none), for
    every cell, one sequence (stream) or several side by side (lines); at learning rate 0 the
    figure is static scoring's."""
    model = make_model(cell=cell, hidden=200, mode=mode, chars=CHARS)
    path = write(tmp_path / "text.txt", PIECE[:700] if mode == "stream" else LINES[:700])
    figures = {}
    for threads in (1, 2, 3):
        monkeypatch.setenv("CHARLM_THREADS", str(threads))
        with dynamic.Adapter(model.network, Settings()) as adapter:
            assert adapter.workers == min(threads, MAX_UNIT_WORKERS)
        figures[threads] = scorer.score_file(model, path, dynamic=True).log_prob
    assert len(set(figures.values())) == 1
    still = scorer.score_file(model, path, dynamic={"lr": 0.0})
    assert still.log_prob == pytest.approx(scorer.score_file(model, path, exact=True).log_prob,
                                           rel=1e-6)


def test_dynamic_in_the_python_api(tmp_path):
    model = make_model(hidden=12, chars=CHARS)
    text = PIECE[:500]
    still = model.score(text, dynamic={"lr": 0})
    assert still.log_prob == pytest.approx(model.score(text).log_prob, rel=1e-6)
    assert still.to_json()["dynamic"]["lr"] == 0
    adapted = model.score_file(write(tmp_path / "t.txt", text), dynamic={"segment": 20})
    assert adapted.dynamic["segment"] == 20
    assert adapted.log_prob == pytest.approx(model.score(text, dynamic={"segment": 20}).log_prob,
                                             rel=1e-9)


def test_the_python_api_refuses_figures_that_cannot_go_together(tmp_path):
    """As the command refuses them: dynamic evaluation beside windows or an exact pass."""
    from charlm.errors import UsageError
    model = make_model(hidden=8, chars=CHARS)
    path = write(tmp_path / "t.txt", PIECE[:300])
    for call in (lambda: model.score(PIECE[:300], dynamic=True, windows=8),
                 lambda: model.score_file(path, dynamic=True, windows=8),
                 lambda: model.score_file(path, dynamic={}, exact=True)):
        with pytest.raises(UsageError, match="give different figures: ask for one at a time"):
            call()


# ---- nanoGPT's windows ---------------------------------------------------------------------------

def test_windows_are_the_mean_of_windows_scored_one_by_one():
    model = make_model(cell="lstm", hidden=12, chars=CHARS)
    ids = model.vocab.encode(PIECE * 2)
    engine = Engine(model.network)
    got = scorer.windowed_loss(engine, ids, 30, count=700, seed=5)    # two batches of columns
    assert (got.length, got.count, got.seed) == (30, 700, 5)
    assert scorer.windowed_loss(engine, ids, 30, count=700, seed=5).loss == got.loss
    starts = np.random.default_rng(5).integers(0, len(ids) - 30, size=700)
    total = 0.0
    for s in starts:
        x = ids[s:s + 30].reshape(-1, 1)             # from the zero state, s as context only
        y = ids[s + 1:s + 31].reshape(-1, 1)
        total += float(engine.log_probs(x, y, engine.zero_state(1)).sum())
    assert got.loss == pytest.approx(-total / (700 * 30), rel=1e-6)


def test_windows_count_is_capped_by_the_text():
    model = make_model(hidden=8, chars=CHARS)
    ids = model.vocab.encode("Anna and Bob.")
    got = scorer.windowed_loss(Engine(model.network), ids, 10)
    assert got.count == len(ids) - 10


def test_windows_seeded_and_beside_the_stateful_figure(trained):
    model, text = trained
    a = score_json("--model", model, "--file", text, "--windows", 64, "--num-windows", 800,
                   "--seed", 3)
    b = score_json("--model", model, "--file", text, "--windows", 64, "--num-windows", 800,
                   "--seed", 3)
    c = score_json("--model", model, "--file", text, "--windows", 64, "--num-windows", 800,
                   "--seed", 4)
    assert a["windowed_loss"] == b["windowed_loss"]
    assert a["windowed_loss"] != c["windowed_loss"]
    assert a["windows"] == {"length": 64, "count": 800, "seed": 3,
                            "bits_per_char": pytest.approx(a["windowed_loss"] / np.log(2))}
    stateful = -a["log_prob"] / a["num_tokens"]
    # a cold start costs the first characters of each window: above the stateful figure, not far
    assert stateful < a["windowed_loss"] < stateful + 0.5
    assert a["windowed_loss"] == pytest.approx(c["windowed_loss"], abs=0.1)


# ---- bad inputs ----------------------------------------------------------------------------------

@pytest.mark.parametrize("args, words", [
    (["--file", "FILE", "--windows", 0], "--windows"),
    (["--file", "FILE", "--windows", 64, "--num-windows", 0], "--num-windows"),
    (["--file", "FILE", "--windows", 5000], "at least 5001"),
    (["--dynamic"], "--file"),
    (["Anna", "--dynamic"], "--file"),
    (["--windows", 8], "--file"),
    (["--file", "FILE", "--dynamic", "--dynamic-lr", -0.1], "--dynamic-lr"),
    (["--file", "FILE", "--dynamic", "--dynamic-segment", 0], "--dynamic-segment"),
    (["--file", "FILE", "--dynamic", "--dynamic-decay", 2], "--dynamic-decay"),
    (["--file", "FILE", "--dynamic-lr", 0.1], "--dynamic"),
    (["--file", "FILE", "--dynamic", "--windows", 8], "one at a time"),
    (["--file", "FILE", "--dynamic", "--exact"], "one at a time"),
])
def test_bad_inputs_give_one_line_and_exit_2(tmp_path, args, words):
    model = save_model(make_model(hidden=8, chars=CHARS), tmp_path / "m.npz")
    text = write(tmp_path / "t.txt", PIECE[:300])
    done = run_charlm("score", "--model", model, *[text if a == "FILE" else a for a in args])
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ")
    assert words in done.stderr
    assert "Traceback" not in done.stderr


def test_windows_refused_for_a_lines_mode_model(tmp_path):
    model = save_model(make_model(hidden=8, mode="lines", chars=CHARS), tmp_path / "m.npz")
    done = run_charlm("score", "--model", model, "--file", write(tmp_path / "t.txt", PIECE),
                      "--windows", 8)
    assert done.returncode == 2 and "lines mode" in done.stderr


def test_settings_checked_in_the_api():
    with pytest.raises(Exception, match="lr"):
        dynamic.settings_from({"lr": -1})
    with pytest.raises(Exception, match="unknown"):
        dynamic.settings_from({"learning_rate": 1})
    assert dynamic.settings_from(True) == Settings()
    assert dynamic.settings_from(None) is None


# ---- a word model ------------------------------------------------------------------------------

def made_up_words(seed, count=40):
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list("abcdefghijklmnop"), rng.integers(3, 8))) for _ in range(count)]


WORDS = made_up_words(3)
WORD_CORPUS = "\n".join(" ".join(WORDS[k:k + 10]) + "." for k in range(0, 40, 10)) + "\n"
WORD_MODEL = make_word_model(WORD_CORPUS, hidden=16)


@pytest.mark.parametrize("mode", ["stream", "lines"])
def test_a_word_model_at_learning_rate_zero_is_static_scoring(tmp_path, mode):
    model = make_word_model(WORD_CORPUS, hidden=12, layers=2, mode=mode)
    rng = np.random.default_rng(5)
    sentences = [" ".join(rng.choice(WORDS + ["Unseen"], 12)) + "." for _ in range(30)]
    path = write(tmp_path / "text.txt", "\n".join(sentences) + "\n")
    static = scorer.score_file(model, path, exact=True)
    still = scorer.score_file(model, path, dynamic={"lr": 0.0, "segment": 23})
    assert static.unknown == ["Unseen"] and still.unknown_tokens == static.unknown_tokens > 0
    assert (still.num_tokens, still.num_chars) == (static.num_tokens, static.num_chars)
    # per character of the text, the <UNK>s' spellings included, as static scoring counts
    assert still.log_prob == pytest.approx(static.log_prob, rel=1e-6)
    assert still.bits_per_char == pytest.approx(static.bits_per_char, rel=1e-6)
    text = sentences[0] + " " + sentences[1]
    assert model.score(text, dynamic={"lr": 0}).log_prob == pytest.approx(
        model.score(text).log_prob, rel=1e-6)


def test_a_word_model_scores_a_repeated_text_much_better_the_second_time(tmp_path):
    rng = np.random.default_rng(4)
    text = " ".join(rng.choice(WORDS, 300)) + "\n"
    path = save_model(WORD_MODEL, tmp_path / "w.npz")
    once, twice = write(tmp_path / "once.txt", text), write(tmp_path / "twice.txt", text * 2)

    def bits(*options):
        a = score_json("--model", path, "--file", once, *options)
        b = score_json("--model", path, "--file", twice, *options)
        assert b["num_tokens"] == 2 * a["num_tokens"] and b["tokens"] == "words"
        return -a["log2_prob"] / len(text), -(b["log2_prob"] - a["log2_prob"]) / len(text)

    static_first, static_second = bits("--exact")
    dynamic_first, dynamic_second = bits("--dynamic", "--dynamic-lr", 0.01)
    assert static_second == pytest.approx(static_first, rel=0.05)
    assert dynamic_second < 0.9 * static_second and dynamic_second < 0.95 * dynamic_first
    again = score_json("--model", path, "--file", twice, "--dynamic", "--dynamic-lr", 0.01)
    assert again["log_prob"] == score_json("--model", path, "--file", twice, "--dynamic",
                                           "--dynamic-lr", 0.01)["log_prob"]
    assert again["dynamic"]["segments"] == -(-again["num_tokens"] // Settings.segment)


def test_a_word_model_s_windows_are_refused_in_one_line(tmp_path):
    path = save_model(WORD_MODEL, tmp_path / "w.npz")
    done = run_charlm("score", "--model", path, "--file", write(tmp_path / "t.txt", "abc dd\n"),
                      "--windows", 8)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "word model's targets are word tokens" in done.stderr
