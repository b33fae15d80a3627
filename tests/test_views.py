"""The views (docs/views-and-report.md): gradient norms through time against finite differences
of the reference network (tests/reference.py) and against torch.autograd; activations, features
and the ranking of units; the loss curves; the `neurons` and `gradients` commands, their JSON and
their one-line errors."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from charlm.store import checkpoint
from charlm.api import Model
from charlm.network.shapes import bidirectional_shapes
from charlm.store.checkpoint import Checkpoint, TrainingState
from charlm.cli import main
from charlm.config import Config, optimizer_moments
from charlm.network.stack import FlatArrays, init_parameters, parameter_shapes
from charlm.store.runstate import Evaluation, RunState
from charlm.views import curves
from charlm.views.gradients import distance_norms, fresh_network
from charlm.views.neurons import activations, correlations, features, rank_units
from charlm.text.vocab import EOS_ID, Vocab
from reference import ReferenceNetwork, layer_step, log_softmax

TEXT = "He said \"hi (a [b] c)\" then\nno. Anna and Bob ran to 42 beds.\n"
CELLS = ("rnn", "gru", "lstm")


def make_model(cell="lstm", hidden=8, layers=2, text=TEXT, seed=0, run=None):
    vocab = Vocab.from_text(text)
    params = FlatArrays(parameter_shapes(cell, len(vocab), hidden, layers))
    init_parameters(params, cell, np.random.default_rng(seed))
    config = Config(cell=cell, hidden_size=hidden, num_layers=layers, mode="stream", dropout=0.0)
    moments = {name: np.zeros_like(params.flat) for name in optimizer_moments(config)}
    training = TrainingState(params.flat.copy(), moments, run=run) if run is not None else None
    return Model(Checkpoint(config, vocab, params, training))


def save(path, model):
    checkpoint.save(path, model.checkpoint)
    return str(path)


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def assert_one_line_error(result, code, pattern):
    assert result.exit_code == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and pattern in lines[0], lines


# ---- gradients through time ----------------------------------------------------------------------

def top_layer_run(network, ids):
    """The reference network's run of the text: inputs, the top layer's inputs zx (n, G*H), its h
    and c (n, H) at every position, and the reference itself."""
    ref = ReferenceNetwork(network.cell, network.params)
    x = np.concatenate([[EOS_ID], ids[:-1]])
    run = ref.run(x[:, None])
    hs = run["hs"][:, :, 0]
    cs = run["cs"][:, :, 0] if run["cs"] is not None else np.zeros_like(hs)
    w_x = ref.layers[-1][0]
    zx = w_x[x] if ref.L == 1 else hs[-2] @ w_x
    return ref, zx, hs[-1], cs[-1]


def finite_difference_norms(network, ids, max_distance, eps=1e-5):
    """The definition, computed the slow way: for each target t and distance k, the gradient of
    L_t with respect to h_{t-k} (c_{t-k} held fixed) by central differences, in float64, running
    the reference network's top layer forward from the perturbed state."""
    ref, zx, h, c = top_layer_run(network, ids)
    _, w_h, b = ref.layers[-1]

    def loss(t, s, h_s, c_s):
        h_run, c_run = h_s[None], c_s[None]
        for p in range(s + 1, t + 1):
            h_run, c_run, _ = layer_step(network.cell, zx[p][None], h_run, c_run, w_h, b)
        return -log_softmax(h_run @ ref.w_y + ref.b_y)[0, ids[t]]

    n = len(ids)
    norms, counts = np.zeros(max_distance + 1), np.zeros(max_distance + 1, int)
    for k in range(min(max_distance, n - 1) + 1):
        for t in range(k, n):
            s = t - k
            grad = [(loss(t, s, h[s] + e, c[s]) - loss(t, s, h[s] - e, c[s])) / (2 * eps)
                    for e in np.eye(ref.H) * eps]
            norms[k] += np.linalg.norm(grad)
            counts[k] += 1
    return norms / np.maximum(counts, 1), counts


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("cell", CELLS)
def test_gradient_norms_match_finite_differences(cell, layers):
    network = fresh_network(cell, 9, 6, layers, seed=3)
    ids = np.random.default_rng(1).integers(2, 9, 14).astype(np.int32)
    norms, counts = distance_norms(network, ids, 6)
    expected, expected_counts = finite_difference_norms(network, ids, 6)
    np.testing.assert_array_equal(counts, expected_counts)
    np.testing.assert_allclose(norms, expected, rtol=1e-6)


@pytest.mark.parametrize("cell", CELLS)
def test_gradient_norms_match_torch_autograd(cell):
    torch = pytest.importorskip("torch")
    network = fresh_network(cell, 9, 5, 2, seed=4)
    ids = np.random.default_rng(2).integers(2, 9, 12).astype(np.int32)
    ref, zx, _, _ = top_layer_run(network, ids)
    _, w_h, b = (torch.tensor(a) for a in ref.layers[-1])
    w_h.requires_grad_()            # so that every h is a node of the graph
    w_y, b_y = torch.tensor(ref.w_y), torch.tensor(ref.b_y)
    zx = torch.tensor(zx)
    H, n = ref.H, len(ids)
    h, c = torch.zeros(H, dtype=torch.float64), torch.zeros(H, dtype=torch.float64)
    hs, losses = [], []
    for t in range(n):     # the top layer in torch: docs/model.md's equations, once more
        z = zx[t] + h @ w_h + b
        if cell == "rnn":
            h = torch.tanh(z)
        elif cell == "lstm":
            u, f, o = (torch.sigmoid(z[i * H:(i + 1) * H]) for i in range(3))
            c = u * torch.tanh(z[3 * H:]) + f * c
            h = o * torch.tanh(c)
        else:
            r, u = torch.sigmoid(z[:H]), torch.sigmoid(z[H:2 * H])
            cand = torch.tanh(zx[t, 2 * H:] + (r * h) @ w_h[:, 2 * H:] + b[2 * H:])
            h = u * cand + (1 - u) * h
        hs.append(h)
        losses.append(-torch.log_softmax(h @ w_y + b_y, 0)[int(ids[t])])
    K = 5
    expected = np.zeros(K + 1)
    for t in range(n):
        grads = torch.autograd.grad(losses[t], hs[max(0, t - K):t + 1], retain_graph=True)
        for k, g in enumerate(reversed(grads)):
            expected[k] += float(g.norm()) / (n - k)
    norms, _ = distance_norms(network, ids, K)
    np.testing.assert_allclose(norms, expected, rtol=1e-6)


def test_counts_and_distances_beyond_the_text():
    network = fresh_network("gru", 6, 4, 1, seed=0)
    norms, counts = distance_norms(network, np.array([2, 3, 4, 5], np.int32), 6)
    assert counts.tolist() == [4, 3, 2, 1, 0, 0, 0]
    assert np.isfinite(norms[:4]).all() and (norms[:4] > 0).all() and np.isnan(norms[4:]).all()
    norms, counts = distance_norms(network, np.array([3], np.int32), 0)
    assert counts.tolist() == [1] and norms[0] > 0


def test_the_norms_do_not_depend_on_how_rows_are_shared(monkeypatch):
    from charlm.views import gradients
    network = fresh_network("lstm", 7, 6, 2, seed=5)
    ids = np.random.default_rng(0).integers(2, 7, 300).astype(np.int32)
    one = distance_norms(network, ids, 20)[0]
    monkeypatch.setattr(gradients, "MIN_SHARE", 8)
    monkeypatch.setenv("CHARLM_THREADS", "3")
    np.testing.assert_allclose(distance_norms(network, ids, 20)[0], one, rtol=1e-12)


# ---- neurons -------------------------------------------------------------------------------------

def test_activation_i_is_the_state_after_reading_character_i():
    model = make_model("lstm", hidden=6)
    acts = activations(model, "Anna ran")
    assert acts.shape == (2, 2, 8, 6)
    ids = model.vocab.encode("Anna ran")
    run = ReferenceNetwork("lstm", model.network.params).run(
        np.concatenate([[EOS_ID], ids])[:, None])
    np.testing.assert_allclose(acts[:, 0], run["hs"][:, 1:, 0], atol=1e-5)
    np.testing.assert_allclose(acts[:, 1], run["cs"][:, 1:, 0], atol=1e-5)


def test_a_lines_mode_model_reads_each_line_as_an_example_ended_by_eos():
    """As training read its lines: each from the zero state and <EOS>, its newline read as the
    <EOS> that ends it; a stream model reads the text as one sequence."""
    model = make_model("gru", hidden=6)
    model.config.mode = "lines"
    acts = activations(model, "Anna\nBob")
    reference = ReferenceNetwork("gru", model.network.params)
    for line, at in (("Anna", 0), ("Bob", 5)):
        ids = np.concatenate([[EOS_ID], model.vocab.encode(line), [EOS_ID]])[:, None]
        hs = reference.run(ids)["hs"][:, 1:, 0]               # after each token of the line
        np.testing.assert_allclose(acts[:, 0, at:at + len(line) + 1], hs[:, :len(acts[0, 0]) - at],
                                   atol=1e-5)
    model.config.mode = "stream"
    assert not np.allclose(activations(model, "Anna\nBob")[:, :, 5:], acts[:, :, 5:], atol=1e-3)


def marks(features, names):
    """Each named 0/1 feature of every token as a string of digits, to read beside the text."""
    return {name: "".join(str(int(v)) for v in features[name]) for name in names}


def test_features_on_hand_made_strings():
    f = features('a "b(c[d]e)" f\nGh 7.')
    expected = {  # a ␣ " b ( c [ d ] e ) " ␣ f ⏎ G h ␣ 7 .
        "inside quotes":     "00111111111000000000",
        "parenthesis depth": "00001111110000000000",
        "bracket depth":     "00000011000000000000",
        "start of word":     "10010101010001010000",
        "position in word":  "10010101010001012000",
        "uppercase":         "00000000000000010000",
        "digit":             "00000000000000000010",
        "vowel":             "10000000010000000000",
        "newline":           "00000000000000100000",
        "space":             "01000000000010000100",
        "punctuation":       "00101010101100000001",
    }
    assert marks(f, expected) == expected
    assert f["position in line"].tolist() == list(range(1, 15)) + [0, 1, 2, 3, 4, 5]
    assert f["to end of line"].tolist() == list(range(14, 0, -1)) + [0, 5, 4, 3, 2, 1]


def test_features_of_word_tokens_on_a_hand_made_text():
    from charlm.text.words import split
    tokens = split('The "old (red) cat" ran.\n  Go 12!')
    f = features(tokens, "words")
    assert tokens[14] == "\n" and tokens[15] == "  " and len(tokens) == 20
    expected = {  #  The ␣ " old ␣ ( red ) ␣ cat " ␣ ran . ⏎ ␣␣ Go ␣ 12 !
        "inside quotes":     "00111111110000000000",
        "parenthesis depth": "00000110000000000000",
        "word":              "10010010010010001010",
        "capitalised word":  "10000000000000001000",
        "number":            "00000000000000000010",
        "space":             "01001000100100010100",
        "punctuation":       "00100101001001000001",
        "newline":           "00000000000000100000",
    }
    assert marks(f, expected) == expected
    assert f["position in line"].tolist() == list(range(1, 15)) + [0, 1, 2, 3, 4, 5]
    assert f["to end of line"].tolist() == list(range(14, 0, -1)) + [0, 5, 4, 3, 2, 1]
    assert f["position in sentence"].tolist() == list(range(1, 14)) + [0, 1, 2, 3, 4, 5, 0]
    assert "vowel" not in f and "start of word" not in f and "position in sentence" not in \
        features("The cat.")


def test_curly_quotes_open_and_close():
    f = features("“ab” c")
    assert f["inside quotes"].tolist() == [1, 1, 1, 0, 0, 0]


def test_ranking_finds_a_planted_unit_and_skips_constant_series():
    feats = features(TEXT * 3)
    n = len(TEXT) * 3
    rng = np.random.default_rng(0)
    acts = rng.standard_normal((2, 2, n, 7)).astype(np.float32)
    acts[1, 1, :, 4] = -0.5 * feats["parenthesis depth"] + 0.01 * rng.standard_normal(n)
    acts[0, 0, :, 2] = 0.25                                   # a unit that never moves
    ranking = rank_units(acts, feats, top=5)
    assert ranking[0] == {"layer": 1, "unit": 4, "state": "c", "feature": "parenthesis depth",
                          "correlation": pytest.approx(-1.0, abs=0.01)}
    assert len(ranking) == 5
    every = rank_units(acts, feats, top=10_000)
    assert not any(r["layer"] == 0 and r["unit"] == 2 and r["state"] == "h" for r in every)
    constant = [name for name, v in feats.items() if np.ptp(v) == 0]
    assert not any(r["feature"] in constant for r in every)
    assert all(abs(a["correlation"]) >= abs(b["correlation"]) for a, b in zip(every, every[1:]))
    capped = rank_units(acts, feats, top=10_000, per_feature=1)
    names = [r["feature"] for r in capped]
    assert len(names) == len(set(names)) == len(feats) - len(constant)


def test_correlations_match_numpy():
    feats = features(TEXT)
    values = np.sin(np.arange(len(TEXT)))
    r = correlations(values, feats)
    assert r["vowel"] == pytest.approx(np.corrcoef(values, feats["vowel"])[0, 1])
    assert r["bracket depth"] is not None and r["digit"] is not None
    assert correlations(np.ones(len(TEXT)), feats)["vowel"] is None


# ---- curves --------------------------------------------------------------------------------------

def history_run():
    history = [Evaluation(10 * i, 2.0 * i, 3.0 - 0.1 * i if i else None, 3.1 - 0.08 * i, True)
               for i in range(8)]
    return RunState(step=70, history=history, clipped_steps=9, best_val_loss=history[-1].val_loss,
                    best_step=70)


def render_text(renderable, width=90):
    from rich.console import Console
    console = Console(width=width, record=True, file=open("/dev/null", "w"))
    console.print(renderable)
    return console.export_text()


def test_curves_render_with_and_without_a_history():
    shown = render_text(curves.render(history_run(), width=90, colour=False))
    assert "gradient clipped on 9 of 70 steps" in shown and "70 (14s)" in shown
    assert "validation" in shown and "training" in shown and "best validation 2.5400" in shown
    coloured = render_text(curves.render(history_run(), width=60, colour=True), width=60)
    assert "gradient clipped" in coloured
    assert render_text(curves.render(RunState())).strip() == render_text(
        curves.render(None)).strip()
    assert "no loss curve" in render_text(curves.render(RunState()))
    assert curves.series(history_run().history)["train_loss"][0] is None


def test_a_word_model_s_curves_say_what_each_loss_is_per():
    chars = render_text(curves.render(history_run(), colour=False))
    words = render_text(curves.render(history_run(), colour=False, kind="words"))
    assert "loss (nats/char)" in chars and "nats/token" not in chars
    assert "loss (training: nats/token; validation: nats/char)" in words


def test_info_draws_the_curve(tmp_path):
    with_history = save(tmp_path / "h.npz", make_model(run=history_run()))
    result = invoke("info", with_history)
    assert result.exit_code == 0, result.stderr
    assert "loss (nats/char)" in result.stdout and "gradient clipped on 9 of 70" in result.stdout
    weights_only = save(tmp_path / "w.npz", make_model())
    result = invoke("info", weights_only)
    assert result.exit_code == 0 and "no loss curve" in result.stdout


def test_train_draws_the_curve_at_the_end_unless_quiet(tmp_path, names_file):
    args = ("train", names_file, "--hidden", 8, "--steps", 6, "--eval-every", 3, "--force")
    shown = invoke(*args, "--out", tmp_path / "a.npz")
    assert shown.exit_code == 0, shown.stderr
    assert "loss (nats/char)" in shown.stdout and "gradient clipped on" in shown.stdout
    quiet = invoke(*args, "--out", tmp_path / "b.npz", "--quiet")
    assert quiet.exit_code == 0 and "loss (nats/char)" not in quiet.stdout


# ---- the commands --------------------------------------------------------------------------------

@pytest.fixture
def model_file(tmp_path):
    return save(tmp_path / "m.npz", make_model("lstm", hidden=8))


def test_neurons_json_without_and_with_a_unit(model_file):
    result = invoke("neurons", TEXT, "--model", model_file, "--json", "--top", 4)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["text"] == TEXT and len(data["activations"]) == len(TEXT)
    assert len(data["ranking"]) == 4
    best = data["ranking"][0]
    assert set(best) == {"layer", "unit", "state", "feature", "correlation"}
    chosen = (data["layer"], data["unit"], data["state"])
    assert chosen == (best["layer"], best["unit"], best["state"])
    assert data["correlations"][best["feature"]] == pytest.approx(best["correlation"])
    result = invoke("neurons", TEXT, "--model", model_file, "--json", "--layer", 0, "--unit", 3,
                    "--state", "c")
    data = json.loads(result.stdout)
    acts = activations(Model(checkpoint.load(model_file)), TEXT)
    np.testing.assert_allclose(data["activations"], acts[0, 1, :, 3], rtol=1e-6)
    assert (data["layer"], data["unit"], data["state"]) == (0, 3, "c")


def test_neurons_ranks_only_the_layer_and_state_given_without_a_unit(model_file):
    result = invoke("neurons", TEXT, "--model", model_file, "--json", "--top", 20, "--layer", 0,
                    "--state", "c")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert len(data["ranking"]) == 20
    assert {(r["layer"], r["state"]) for r in data["ranking"]} == {(0, "c")}
    assert (data["layer"], data["state"]) == (0, "c")


def test_neurons_terminal_output(model_file, tmp_path):
    (tmp_path / "t.txt").write_text(TEXT * 5)
    result = invoke("neurons", "--file", tmp_path / "t.txt", "--chars", 80, "--model", model_file)
    assert result.exit_code == 0, result.stderr
    assert "units that track a feature" in result.stdout and "activation" in result.stdout
    assert "first 80 characters" in result.stderr
    result = invoke("neurons", "Anna", "--model", model_file, "--unit", 2)
    assert result.exit_code == 0 and "layer 1, unit 2, state h" in result.stdout
    assert "units that track" not in result.stdout


def test_neurons_bad_inputs(model_file, tmp_path):
    assert_one_line_error(invoke("neurons", "Anna", "--model", tmp_path / "none.npz"), 4,
                          "no checkpoint")
    assert_one_line_error(invoke("neurons", "Anna", "--model", model_file, "--unit", 8), 2,
                          "--unit must be between 0 and 7")
    assert_one_line_error(invoke("neurons", "Anna", "--model", model_file, "--unit", 0,
                                 "--layer", 2), 2, "--layer must be between 0 and 1")
    assert_one_line_error(invoke("neurons", "", "--model", model_file), 2, "empty")
    assert_one_line_error(invoke("neurons", "--model", model_file), 2, "TEXT")
    assert_one_line_error(invoke("neurons", "\udcff", "--model", model_file), 2, "surrogate")
    assert_one_line_error(invoke("neurons", "Anna", "--model", model_file, "--layer", 2), 2,
                          "--layer must be between 0 and 1")
    (tmp_path / "empty.txt").write_text("")
    assert_one_line_error(invoke("neurons", "--file", tmp_path / "empty.txt", "--model",
                                 model_file), 3, "empty")
    gru = save(tmp_path / "g.npz", make_model("gru"))
    assert_one_line_error(invoke("neurons", "Anna", "--model", gru, "--unit", 0, "--state", "c"),
                          2, "--state c")


def test_gradients_json(model_file):
    result = invoke("gradients", TEXT, "--model", model_file, "--cell", "rnn,gru",
                    "--hidden", 8, "--layers", 1, "--max-distance", 12, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["distances"] == list(range(13))
    assert [c["label"] for c in data["curves"]] == [model_file, "rnn 1x8 untrained",
                                                    "gru 1x8 untrained"]
    assert [c["cell"] for c in data["curves"]] == ["lstm", "rnn", "gru"]
    model = Model(checkpoint.load(model_file))
    norms, counts = distance_norms(model.network, model.vocab.encode(TEXT), 12)
    np.testing.assert_allclose(data["curves"][0]["norms"], norms)
    for curve in data["curves"]:
        assert curve["counts"] == [len(TEXT) - k for k in range(13)]
        assert len(curve["norms"]) == 13 and all(v > 0 for v in curve["norms"])


def test_gradients_terminal_output_and_a_short_text(model_file):
    result = invoke("gradients", "Anna", "--model", model_file, "--max-distance", 10)
    assert result.exit_code == 0, result.stderr
    assert "log scale" in result.stdout and "k = 10" in result.stdout
    data = json.loads(invoke("gradients", "Anna", "--model", model_file, "--max-distance", 10,
                             "--json").stdout)
    assert data["curves"][0]["norms"][4:] == [None] * 7 and data["curves"][0]["counts"][4] == 0


def test_gradients_bad_inputs(model_file, tmp_path):
    assert_one_line_error(invoke("gradients", "Anna", "--model", tmp_path / "none.npz"), 4,
                          "no checkpoint")
    assert_one_line_error(invoke("gradients", "Anna", "--cell", "transformer"), 2, "--cell")
    assert_one_line_error(invoke("gradients", "Anna", "--cell", "rnn", "--max-distance", -1), 2,
                          "--max-distance")
    assert_one_line_error(invoke("gradients", "Anna", "--cell", "rnn", "--hidden", 0), 2,
                          "--hidden")
    assert_one_line_error(invoke("gradients", "", "--cell", "rnn"), 2, "empty")
    assert_one_line_error(invoke("gradients", "\udcff", "--cell", "rnn"), 2, "surrogate")
    assert_one_line_error(invoke("gradients", "Anna", "--model", model_file, "--hidden", 64), 2,
                          "--hidden applies to the freshly initialised networks of --cell")
    assert_one_line_error(invoke("gradients", "Anna", "--cell", ","), 2, "names no cell")
    # the --cell networks take train's rules for the options that shape them
    assert_one_line_error(invoke("gradients", "Anna", "--cell", "rnn", "--seed", -1), 2,
                          "--seed must be between 0 and 2^63 - 1")
    assert_one_line_error(invoke("gradients", "Anna", "--cell", "rnn", "--layers", 17), 2,
                          "--layers must be between 1 and 16")
    vocab = Vocab.from_text(TEXT)
    config = Config(cell="lstm", hidden_size=8, num_layers=1, mode="stream", dropout=0.0,
                    bidirectional=True)
    params = FlatArrays(bidirectional_shapes("lstm", len(vocab), 8, 1))
    both_ways = save(tmp_path / "b.npz", Model(Checkpoint(config, vocab, params)))
    assert_one_line_error(invoke("gradients", "Anna", "--model", both_ways), 2, "bidirectional")
    shown = invoke("neurons", "Anna and Bob", "--model", both_ways, "--unit", 0)
    assert shown.exit_code == 0 and "left-to-right stack" in shown.stderr
    assert_one_line_error(invoke("gradients", "Anna", "--file", tmp_path / "x.txt", "--cell",
                                 "rnn"), 2, "one of them")
    assert_one_line_error(invoke("gradients", "--file", tmp_path / "x.txt", "--cell", "rnn"), 3,
                          "no such file")
    assert_one_line_error(invoke("neurons", "Anna", "--model", model_file, "--chars", 10), 2,
                          "--chars applies to --file only")
    assert_one_line_error(invoke("gradients", "Anna", "--cell", "rnn", "--encoding", "latin-1"),
                          2, "--encoding applies to --file only")
    for option, value in (("--top", 50), ("--per-feature", 7)):     # no ranking is shown
        assert_one_line_error(invoke("neurons", "Anna", "--model", model_file, "--unit", 0,
                                     option, value), 2, f"{option} applies to the ranking")
    assert_one_line_error(invoke("report", "--model", model_file, "--encoding", "latin-1", "-o",
                                 tmp_path / "r.html"), 2, "--encoding applies to --text FILE")
    assert not (tmp_path / "r.html").exists()
    (tmp_path / "t.txt").write_text("abc" * 10)
    assert_one_line_error(invoke("neurons", "--file", tmp_path / "t.txt", "--model", model_file,
                                 "--chars", 100_001), 2, "--chars must be between 1 and 100,000")


def test_a_lines_model_reads_a_newline_as_its_end_of_line_not_as_unknown(tmp_path):
    vocab = Vocab.from_text("Anna Bob Carla")
    params = FlatArrays(parameter_shapes("lstm", len(vocab), 8, 1))
    init_parameters(params, "lstm", np.random.default_rng(0))
    config = Config(cell="lstm", hidden_size=8, num_layers=1, mode="lines", dropout=0.0)
    path = save(tmp_path / "lines.npz", Model(Checkpoint(config, vocab, params)))
    for command in ("neurons", "gradients"):
        known = invoke(command, "Anna\nBob", "--model", path)
        assert known.exit_code == 0 and "<UNK>" not in known.stderr, known.stderr
        unknown = invoke(command, "Anna\nBoz", "--model", path)
        assert "1 character(s)" in unknown.stderr and "'z'" in unknown.stderr, unknown.stderr


def test_help_has_examples():
    for command in ("neurons", "gradients"):
        result = invoke(command, "--help")
        assert result.exit_code == 0 and "Examples:" in result.stdout
