"""Sampling: the Numba generation loop against the reference network (tests/reference.py), every
option and stop rule, and the sample command (in-process and through the installed console
script)."""
import json
import math

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import example, given, settings, strategies as st

from charlm.store import checkpoint
from charlm.api import Model
from charlm.store.checkpoint import Checkpoint
from charlm.cli import main
from charlm.config import Config
from charlm.errors import UsageError
from charlm.kernels import draw as sampling
from charlm.network.stack import FlatArrays, init_parameters, parameter_shapes
from charlm.generation import sampler
from charlm.generation.launch import Pace, narrow_output
from charlm.generation.options import SamplingOptions
from charlm.generation.sampler import Batch, Generation
from charlm.text.vocab import EOS_ID, UNK_ID, Vocab, drawable

from conftest import run_charlm
from reference import ReferenceNetwork

TEXT = "the quick brown fox jumps over the lazy dog; PACK MY BOX WITH FIVE DOZEN JUGS."
NO_PRIME = np.zeros(0, np.int64)


def make_model(cell="lstm", hidden=8, layers=2, mode="stream", seed=0, eos_bias=0.0, unk_bias=0.0,
               text=TEXT, newline_bias=0.0):
    """A randomly initialised model with the vocabulary of text; a large eos_bias, unk_bias or
    newline_bias makes that token near certain."""
    vocab = Vocab.from_text(text)
    config = Config(cell=cell, hidden_size=hidden, num_layers=layers, mode=mode, dropout=0.0)
    params = FlatArrays(parameter_shapes(cell, len(vocab), hidden, layers))
    init_parameters(params, cell, np.random.default_rng(seed))
    rng = np.random.default_rng(seed + 1)
    for name, _ in params.shapes:         # non-zero biases, so that they are tested too
        if name.endswith("b"):
            params[name][:] += rng.normal(0, 0.5, params[name].shape).astype(np.float32)
    params["out.b"][EOS_ID] += eos_bias
    params["out.b"][UNK_ID] += unk_bias
    if "\n" in vocab.index:
        params["out.b"][vocab.index["\n"]] += newline_bias
    return Model(Checkpoint(config, vocab, params))


def reference(model):
    """The reference network (tests/reference.py) with the model's weights as generation reads
    them: a large output layer rounded to half precision (launch.narrow_output)."""
    net = model.network
    params = dict(net.params.views)
    if narrow_output(net.hidden_size, net.vocab_size, net.cell.gates):
        params["out.W"] = params["out.W"].astype(np.float16)
    return ReferenceNetwork(net.cell, params)


def probabilities(logits, temperature=1.0):
    """softmax(logits / temperature) with <UNK> removed."""
    z = np.array(logits, np.float64) / temperature
    z[UNK_ID] = -np.inf
    p = np.exp(z - z.max())
    return p / p.sum()


def run(model, num, steps, prime=NO_PRIME, workers=1, seed=0, temperature=1.0, stop=False):
    """Generate with the kernel directly: (tokens (steps, num), uniforms, Generation or Batch)."""
    if workers == "batch":
        gen = Batch(model.network, num)
    else:
        gen = Generation(model.network, num, workers)
    uniforms = np.random.default_rng(seed).random((steps, num))
    out = gen.step(prime, uniforms, SamplingOptions(temperature=temperature, stop_at_eos=stop),
                   allowed(model))
    return out, uniforms, gen


def allowed(model):
    return drawable(model.vocab, model.config.mode)


def but_unk(logits):
    """What a stream model may draw: every token but <UNK>."""
    return np.arange(len(logits)) != UNK_ID


def assert_drawn_by_inverse_cdf(p, token, u, slack=1e-5):
    """token is the one whose interval of the cumulative distribution holds u (up to slack)."""
    cdf = np.cumsum(p)
    lo = cdf[token] - p[token]
    assert lo - slack <= u <= cdf[token] + slack, (token, u, lo, cdf[token])


# ---- the kernel against the reference ---------------------------------------------------------

CASES = [(cell, layers, num, workers) for cell in ("rnn", "gru", "lstm") for layers in (1, 2)
         for num, workers in ((1, 1), (1, 2), (3, 1), (3, "batch"))]


@pytest.mark.parametrize("cell,layers,num,workers", CASES)
def test_generation_matches_the_numpy_network(cell, layers, num, workers):
    model = make_model(cell, hidden=8, layers=layers)
    prime = model.vocab.encode("the lazy dog").astype(np.int64)
    out, uniforms, gen = run(model, num, 30, prime, workers)
    assert out.shape == (30, num)
    ref = reference(model)
    state = ref.zero_state(num)
    for token in [EOS_ID] + list(prime[:-1]):
        ref.step(np.full(num, token), state)
    tokens = np.full(num, prime[-1])
    for t in range(30):
        logits = ref.step(tokens, state)
        for i in range(num):
            assert_drawn_by_inverse_cdf(probabilities(logits[i]), out[t, i], uniforms[t, i])
        tokens = out[t]
    if workers == "batch":
        return
    h, c = gen.state                      # after reading the last input: the draw not fed back yet
    np.testing.assert_allclose(h, state["h"], atol=2e-5)
    if cell == "lstm":
        np.testing.assert_allclose(c, state["c"], atol=2e-5)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_two_workers_draw_exactly_what_one_does(cell):
    model = make_model(cell, hidden=16, layers=2)
    one, _, g1 = run(model, 1, 200, workers=1, seed=5)
    two, _, g2 = run(model, 1, 200, workers=2, seed=5)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(g1.state[0], g2.state[0])


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_a_large_output_layer_is_split_between_two_workers_who_draw_what_one_does(cell):
    """A word model's output layer (here: 47 tokens >= G x 8 units) is read in half precision
    and split between the workers; the tokens are the same with one worker or two."""
    model = make_model(cell, hidden=8, layers=2)
    assert narrow_output(8, model.network.vocab_size, model.network.cell.gates)
    one, _, g1 = run(model, 1, 300, workers=1, seed=7)
    two, _, g2 = run(model, 1, 300, workers=2, seed=7)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(g1.state[0], g2.state[0])


def test_half_precision_output_moves_the_logits_by_little():
    """The logits from the rounded output layer stay within float16's rounding of each weight
    (2^-11 relative) summed over the units, of the exact ones."""
    model = make_model("lstm", hidden=8, layers=2)
    exact_net = ReferenceNetwork(model.network.cell, model.network.params)
    rounded_net = reference(model)
    state, twin = exact_net.zero_state(1), rounded_net.zero_state(1)
    for token in model.vocab.encode("the lazy dog"):
        exact = exact_net.step([token], state)
        rounded = rounded_net.step([token], twin)
    np.testing.assert_array_equal(state["h"], twin["h"])
    w_y = np.asarray(model.network.params["out.W"], np.float64)
    h = np.abs(state["h"][-1, 0])
    bound = 2.0 ** -11 * (h @ np.abs(w_y)) + 1e-12
    assert np.all(np.abs(rounded - exact) <= bound)
    assert np.any(rounded != exact)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_state_carries_from_chunk_to_chunk(cell):
    """Chunks of odd lengths: h and c are double-buffered, and the next chunk starts from the
    buffer the last step wrote."""
    model = make_model(cell, hidden=8)
    whole, uniforms, one = run(model, 2, 50)
    gen = Generation(model.network, 2)
    parts = [gen.step(NO_PRIME, uniforms[a:b], SamplingOptions(), allowed(model))
             for a, b in ((0, 7), (7, 8), (8, 50))]
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    for a, b in zip(gen.state, one.state):
        np.testing.assert_array_equal(a, b)


# ---- the draw ---------------------------------------------------------------------------------

def reference_support(logits, temperature, top_k, top_p):
    """The tokens that may be drawn and their renormalised probabilities, in the order the draw
    accumulates them: most probable first, equal ones by token id, or all by token id when
    nothing is cut. The probabilities and sums are the draw's own float64 arithmetic
    (exp((logit - max) / temperature), summed in order), so that ties and the nucleus's edge
    fall alike."""
    drawable = but_unk(logits)
    z = logits.astype(np.float64)
    m = z[drawable].max()
    p = np.array([math.exp((x - m) / temperature) if d else 0.0 for x, d in zip(z, drawable)])
    eligible = int(drawable.sum())
    k = eligible if top_k == 0 else min(top_k, eligible)
    if k == eligible and top_p >= 1:
        order = np.flatnonzero(drawable)
    else:
        order = np.argsort(-p, kind="stable")[:k]
        if top_p < 1:
            kept = np.cumsum(p[order])
            order = order[:np.argmax(kept >= top_p * kept[-1]) + 1]
    return order, p[order] / p[order].sum()


@settings(max_examples=300, deadline=None)
@given(logits=st.lists(st.floats(-8, 8), min_size=3, max_size=12, unique=True),
       temperature=st.sampled_from([0.3, 1.0, 2.5]), top_k=st.integers(0, 12),
       top_p=st.sampled_from([0.05, 0.5, 0.9, 1.0]), u=st.floats(0, 1, exclude_max=True))
@example(logits=[3e-36, 1.0, 2.2e-16, 0.0], temperature=2.5, top_k=0, top_p=0.5, u=0.9)
def test_draw_keeps_to_top_k_and_nucleus_and_never_draws_unk(logits, temperature, top_k, top_p,
                                                             u):
    logits = np.array(logits, np.float32)
    token = sampling.draw(logits, u, temperature, top_k, top_p, but_unk(logits),
                          np.empty(len(logits)))
    assert token != UNK_ID
    support, q = reference_support(logits, temperature, top_k, top_p)
    rank = list(support).index(token)          # fails if token is outside the support
    cdf = np.cumsum(q)
    assert cdf[rank] - q[rank] - 1e-6 <= u <= cdf[rank] + 1e-6


@pytest.mark.parametrize("top_k,top_p", [(2, 1.0), (0, 0.4), (3, 0.9)])
def test_equal_probabilities_are_ranked_by_token_id(top_k, top_p):
    """Four tokens tie: a cut keeps the lowest ids, whatever u, on every machine."""
    logits = np.array([1.0, 5.0, -1.0, 1.0, 1.0, 1.0], np.float32)      # <UNK> (1) is never drawn
    kept = {(2, 1.0): {0, 3}, (0, 0.4): {0, 3}, (3, 0.9): {0, 3, 4}}[top_k, top_p]
    drawn = {sampling.draw(logits, u, 1.0, top_k, top_p, but_unk(logits), np.empty(6))
             for u in np.linspace(0, 0.999, 50)}
    assert drawn == kept


@given(logits=st.lists(st.floats(-8, 8), min_size=3, max_size=12, unique=True))
def test_temperature_zero_is_argmax_without_unk(logits):
    logits = np.array(logits, np.float32)
    expected = np.argmax(np.where(np.arange(len(logits)) == UNK_ID, -np.inf, logits))
    assert sampling.draw(logits, 0.99, 0.0, 0, 1.0, but_unk(logits), np.empty(len(logits))) == expected


def test_draw_follows_the_distribution():
    logits = np.array([0.5, 3.0, 1.0, 0.0, -1.0, 2.0], np.float32)
    p = probabilities(logits, 0.7)
    uniforms = np.random.default_rng(0).random(20000)
    counts = np.bincount([sampling.draw(logits, u, 0.7, 0, 1.0, but_unk(logits), np.empty(6))
                          for u in uniforms], minlength=6) / len(uniforms)
    np.testing.assert_allclose(counts, p, atol=0.01)


# ---- the options of sample() ----------------------------------------------------------------

def test_greedy_is_the_argmax_of_each_step_and_ignores_the_seed():
    model = make_model("lstm")
    text = model.sample(length=40, temperature=0, seed=1)[0]
    assert model.sample(length=40, temperature=0, seed=2)[0] == text
    ref, token = reference(model), EOS_ID
    state = ref.zero_state(1)
    for ch in text:
        p = probabilities(ref.step([token], state)[0])
        token = EOS_ID if ch == "\n" else model.vocab.encode(ch)[0]
        assert p[token] == pytest.approx(p.max(), abs=1e-5)
    assert model.sample(num=3, length=40, temperature=0) == [text] * 3
    assert model.sample(length=40, top_k=1, seed=3) == [text]
    assert model.sample(length=40, top_p=1e-6, seed=4) == [text]


def test_same_seed_same_samples_and_streaming_changes_nothing():
    model = make_model("gru", hidden=16)
    first = model.sample(num=4, length=300, seed=11, top_k=10, top_p=0.95, temperature=1.3)
    assert model.sample(num=4, length=300, seed=11, top_k=10, top_p=0.95, temperature=1.3) == first
    assert model.sample(num=4, length=300, seed=12) != first
    assert len(model.sample(num=2, length=30)) == 2            # seed None: fresh randomness
    pieces = []
    text = model.sample(length=300, seed=11, on_text=pieces.append)[0]
    assert len(pieces) > 3 and "".join(pieces) == text
    assert model.sample(length=300, seed=11) == [text]


def test_two_workers_for_a_wide_model_sample_what_one_worker_does():
    model = make_model("lstm", hidden=128, layers=1)
    one = Generation(model.network, 1, 1)
    uniforms = np.random.default_rng(3).random((100, 1))
    expected = one.step(NO_PRIME, uniforms, SamplingOptions(), allowed(model))
    text = model.vocab.decode(expected[:, 0])
    assert set(Generation(model.network, 1).launcher.pace.rates) == {1, 2}
    pieces = []
    assert model.sample(length=100, seed=3, on_text=pieces.append) == [text]


def test_pace_measures_each_choice_then_keeps_the_faster():
    pace = Pace((2, 1))
    assert pace.pick() == 2
    pace.record(2, 100, 0.01)
    assert pace.pick() == 1
    pace.record(1, 100, 0.02)
    picks = [pace.pick() for _ in range(2 * pace.RECHECK)]
    assert picks.count(2) == 2 * pace.RECHECK - 2 and picks.count(1) == 2


def test_samples_that_stopped_stay_stopped_across_chunks(monkeypatch):
    model = make_model("lstm", mode="lines", eos_bias=1.5)
    whole = model.sample(num=16, seed=2, length=60)
    monkeypatch.setattr(sampler, "CHUNK_VALUES", 64)         # 4 steps per call
    assert model.sample(num=16, seed=2, length=60) == whole
    assert any(len(t) < 60 for t in whole) and len(set(whole)) > 8


def test_a_batch_whose_samples_all_stop_at_the_end_of_a_chunk_ends(monkeypatch):
    model = make_model("lstm", mode="lines", eos_bias=40.0)
    monkeypatch.setattr(sampler, "CHUNK_VALUES", 4)      # 2 steps per call: a character, <EOS>
    assert [len(t) for t in model.sample(num=2, seed=0)] == [1, 1]


def test_options_are_checked_and_resolved_once_into_one_record():
    options = SamplingOptions.checked(make_model(mode="lines"), prime="the", stop="x")
    assert options == SamplingOptions(num=1, length=1000, prime="the", stop_at_eos=True,
                                      stops=("x",))
    stream = SamplingOptions.checked(make_model(mode="stream"), num=3, beam=None)
    assert (stream.num, stream.length, stream.stop_at_eos) == (3, 200, False)
    beam = SamplingOptions.checked(make_model(), beam=4)
    assert (beam.num, beam.beam) == (None, 4)


def test_unk_is_never_drawn():
    model = make_model("rnn", unk_bias=30.0)
    out, _, _ = run(model, 5, 200)
    assert not np.any(out == UNK_ID)
    assert [len(t) for t in model.sample(num=3, length=50, seed=0)] == [50] * 3


def test_stop_rules():
    eos = make_model("lstm", mode="lines", eos_bias=40.0)
    # lines: stops at <EOS>, which never comes first (no training line is blank)
    assert [len(t) for t in eos.sample(num=2, seed=0)] == [1, 1]
    assert eos.sample(prime="ab", seed=0) == [""]
    text = eos.sample(length=5, stop_at_eos=False, seed=0)[0]     # <EOS> written as newline
    assert text[1::2] == "\n" * 2 and "\n" not in text[::2]       # after each line's letter
    stream = make_model("lstm", mode="stream", eos_bias=40.0)
    assert stream.sample(length=5, seed=0) == ["\n" * 5]                # stream: length only
    assert stream.sample(length=5, stop_at_eos=True, seed=0) == [""]
    never = make_model("lstm", mode="lines", eos_bias=-40.0)
    assert [len(t) for t in never.sample(num=2, seed=0)] == [1000, 1000]  # the cap in lines mode
    assert len(make_model("lstm", mode="stream").sample(seed=0)[0]) == 200
    assert make_model().sample(num=2, length=0) == ["", ""]


def test_a_line_is_never_blank_and_never_holds_a_newline():
    """Lines mode: no training line is blank or holds a newline, so generation never starts a line
    with <EOS>, nor draws the newline token that models trained before lines mode left it out of
    the vocabulary still have, however probable the model makes them."""
    model = make_model("lstm", mode="lines", text=TEXT + "\n", eos_bias=5.0, newline_bias=5.0)
    for texts in (model.sample(num=40, seed=1), [model.sample(seed=k)[0] for k in range(10)],
                  model.sample(num=3, temperature=0), model.sample(num=5, top_k=2, seed=2),
                  model.sample(beam=4, num=4)):
        assert all(texts) and not any("\n" in t for t in texts), texts
    certain_eos = make_model("lstm", mode="lines", text=TEXT + "\n", eos_bias=40.0)
    assert [len(t) for t in certain_eos.sample(num=40, seed=1)] == [1] * 40
    stream = make_model("lstm", mode="stream", text=TEXT + "\n", newline_bias=5.0)
    assert stream.sample(length=50, seed=0)[0].count("\n") > 25       # the rules are lines mode's
    # lines that <EOS> does not end: written one per line, <EOS> at every chance, none blank
    for texts in (certain_eos.sample(num=8, seed=1, stop_at_eos=False, length=40),
                  [certain_eos.sample(seed=k, stop_at_eos=False, length=40)[0] for k in range(3)]):
        for text in texts:
            assert "\n\n" not in text and not text.startswith("\n"), texts
            assert text.count("\n") == len(text) // 2, texts




def test_samples_of_a_batch_stop_independently():
    model = make_model("gru", mode="lines", eos_bias=2.0)
    gen = Generation(model.network, 16)
    out = gen.step(NO_PRIME, np.random.default_rng(1).random((100, 16)),
                   SamplingOptions(stop_at_eos=True), allowed(model))
    lengths = []
    for i in range(16):
        ends = np.flatnonzero(out[:, i] == EOS_ID)
        assert len(ends) == 1 and np.all(out[ends[0] + 1:, i] == -1)
        lengths.append(ends[0])
    assert len(set(lengths)) > 1 and len(out) == max(lengths) + 1
    texts = model.sample(num=16, seed=1)
    assert all("\n" not in t for t in texts)


def test_prime_is_read_first_and_not_returned():
    model = make_model("lstm")
    out, uniforms, _ = run(model, 1, 20, model.vocab.encode("the fox").astype(np.int64), seed=9)
    assert model.sample(length=20, prime="the fox", seed=9) == [model.vocab.decode(out[:, 0])]
    assert model.sample(length=20, prime="the fox", seed=9) != model.sample(length=20, seed=9)


def test_a_prime_with_unknown_characters_is_refused_by_name():
    with pytest.raises(UsageError, match="'é'.*'☃'"):
        make_model().sample(prime="thé ☃")


@pytest.mark.parametrize("option,value,message", [
    ("temperature", -0.5, "--temperature"), ("temperature", float("nan"), "--temperature"),
    ("top_k", -1, "--top-k"), ("top_p", 0.0, "--top-p"), ("top_p", 1.5, "--top-p"),
    ("length", -1, "--length"), ("num", 0, "--num"), ("num", 2.5, "--num"),
    ("seed", -3, "--seed"), ("prime", 7, "--prime"), ("stop_at_eos", "yes", "--stop-at-eos"),
])
def test_bad_options_are_refused_with_the_option_name(option, value, message):
    with pytest.raises(UsageError, match=message):
        make_model().sample(**{option: value})


def test_on_text_needs_a_single_sample():
    with pytest.raises(UsageError, match="on_text"):
        make_model().sample(num=2, on_text=print)


# ---- the command ------------------------------------------------------------------------------

@pytest.fixture
def model_file(tmp_path):
    model = make_model("gru", hidden=16, mode="lines")
    path = tmp_path / "m.npz"
    checkpoint.save(path, model.checkpoint)
    return path


def invoke(*args):
    return CliRunner().invoke(main, ["sample", *map(str, args)], catch_exceptions=False)


def test_command_prints_and_streams_samples(model_file):
    result = invoke("--model", model_file, "--num", 3, "--seed", 4, "--length", 30)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == make_model("gru", hidden=16, mode="lines").sample(
        num=3, seed=4, length=30)
    result = invoke("--model", model_file, "--seed", 4, "--prime", "PACK", "--length", 30)
    assert result.exit_code == 0
    assert result.stdout.startswith("PACK") and result.stdout.endswith("\n")


def test_command_json_gives_the_text_after_the_prime(model_file):
    result = invoke("--model", model_file, "--json", "--num", 2, "--seed", 1, "--prime", "the",
                    "--no-stop-at-eos", "--length", 25, "--temperature", 0.5, "--top-k", 5,
                    "--top-p", 0.9)
    assert result.exit_code == 0, result.stderr
    samples = json.loads(result.stdout)["samples"]
    model = make_model("gru", hidden=16, mode="lines")
    assert samples == model.sample(num=2, seed=1, prime="the", stop_at_eos=False, length=25,
                                   temperature=0.5, top_k=5, top_p=0.9)
    assert [len(s) for s in samples] == [25, 25]


@pytest.mark.parametrize("args,pattern", [
    (["--temperature", "-1"], "--temperature"), (["--top-p", "0"], "--top-p"),
    (["--top-k", "-2"], "--top-k"), (["--num", "0"], "--num"), (["--length", "-5"], "--length"),
    (["--prime", "ü"], "'ü'"), (["--seed", "-1"], "--seed"),
    (["--keep-stop"], "--keep-stop applies to --stop STR"),
])
def test_command_bad_options_end_with_one_line(model_file, args, pattern):
    result = invoke("--model", model_file, "--prime", "the", *args)
    assert result.exit_code == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and pattern in lines[0]


def test_the_python_api_refuses_what_the_command_refuses_before_any_work():
    lines, stream = make_model(mode="lines"), make_model(mode="stream")
    with pytest.raises(UsageError, match="--keep-stop applies to --stop STR"):
        lines.sample(keep_stop=True)
    with pytest.raises(UsageError, match="--exact needs a lines-mode model"):
        SamplingOptions.checked(stream, match="the", exact=True)
    with pytest.raises(UsageError, match="needs --keep-stop"):
        SamplingOptions.checked(lines, beam=2, match="t[a-z]+", stop="e")


def test_command_missing_model(tmp_path):
    result = invoke("--model", tmp_path / "none.npz")
    assert result.exit_code == 4 and "none.npz" in result.stderr


def test_help_lists_every_option_with_examples():
    text = invoke("--help").stdout
    for option in ("--model", "--length", "--temperature", "--top-k", "--top-p", "--prime", "--num",
                   "--seed", "--stop-at-eos", "--json", "Examples", "unknown"):
        assert option in text


def test_console_script_samples_like_the_api(model_file):
    result = run_charlm("sample", "--model", model_file, "--json", "--seed", 8, "--num", 2)
    assert result.returncode == 0, result.stderr
    expected = make_model("gru", hidden=16, mode="lines").sample(num=2, seed=8)
    assert json.loads(result.stdout) == {"samples": expected}
    bad = run_charlm("sample", "--model", model_file, "--top-p", "7")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--top-p" in bad.stderr
