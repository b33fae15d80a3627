"""Beam search: log-probabilities that agree with `charlm score`, exactness when the beam holds
every continuation, never worse than greedy, beam 1 = greedy, stop strings and <EOS>, the
length penalty, two workers = one, bad options, and the command line."""
import itertools
import json

import numpy as np
import pytest
from click.testing import CliRunner

import charlm.generation.beam
from charlm.generation.beam import beam_search
from charlm.cli import main
from charlm.errors import UsageError
from charlm.network.engine import Engine

from conftest import run_charlm
from tiny_models import make_model, save_model

CELLS = ("rnn", "gru", "lstm")


def continuation_log_prob(model, prime, text, ended_on_eos):
    """log P(text | <EOS>, prime) from `charlm score` alone: the score of prime + text minus the
    score of the prime, each without its closing <EOS> term (lines mode), plus that term for
    prime + text when the continuation ended on <EOS>."""
    def without_closing_eos(s):
        if not s:
            return 0.0, 0.0
        result = model.score(s, per_char=True)
        closing = result.per_char[-1][1] if model.config.mode == "lines" else 0.0
        return result.log_prob - closing, closing

    whole, closing = without_closing_eos(prime + text)
    if not prime + text:       # score cannot read an empty text: log p(<EOS> | <EOS>) directly
        engine = Engine(model.network)
        eos = np.zeros((1, 1), np.int32)
        closing = float(engine.log_probs(eos, eos, engine.zero_state(1))[0, 0])
    before, _ = without_closing_eos(prime)
    return whole - before + (closing if ended_on_eos else 0.0)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("mode", ["stream", "lines"])
def test_log_probs_agree_with_score(cell, mode):
    model = make_model(cell, hidden=16, mode=mode, eos_bias=1.0 if mode == "lines" else 0.0)
    for prime in ("", "the "):
        results = beam_search(model, prime=prime, beam=5, length=25)
        assert len(results) == 5
        for r in results:
            assert r.ended in (("eos", "length") if mode == "lines" else ("length",))
            expected = continuation_log_prob(model, prime, r.text, r.ended == "eos")
            assert r.log_prob == pytest.approx(expected, abs=1e-4)
            assert r.num_tokens == len(r.text) + (r.ended == "eos")


def test_a_beam_that_holds_every_continuation_is_exact():
    # 3 characters, 3 steps: 27 continuations, all in a beam of 27, ranked as score ranks them
    model = make_model("gru", hidden=8, mode="stream", chars="abc", eos_bias=-1.0)
    results = beam_search(model, prime="ab", beam=27, length=3)
    everything = sorted(("".join(t) for t in itertools.product("abc", repeat=3)),
                        key=lambda t: -continuation_log_prob(model, "ab", t, False))
    assert [r.text for r in results] == everything
    log_probs = [r.log_prob for r in results]
    assert log_probs == sorted(log_probs, reverse=True)


@pytest.mark.parametrize("cell", CELLS)
def test_never_less_probable_than_greedy_and_beam_1_is_greedy(cell):
    for seed in range(6):
        for mode in ("stream", "lines"):
            model = make_model(cell, hidden=16, mode=mode, seed=seed,
                               eos_bias=-6.0 if mode == "stream" else 1.0)
            greedy = model.sample(prime="ox", temperature=0, length=30)[0]
            greedy_log_p = continuation_log_prob(model, "ox", greedy, mode == "lines"
                                                 and len(greedy) < 30)
            one = beam_search(model, prime="ox", beam=1, length=30)
            assert [r.text for r in one] == [greedy]
            for k in (2, 3, 8):
                best = beam_search(model, prime="ox", beam=k, length=30)[0]
                assert best.log_prob >= greedy_log_p - 1e-4      # float32 products differ


def test_results_are_distinct_and_best_first():
    model = make_model("lstm", hidden=16, mode="lines", eos_bias=0.5)
    results = beam_search(model, beam=12, length=10)
    assert len({r.text for r in results}) == len(results) == 12
    scores = [r.score for r in results]
    assert scores == sorted(scores, reverse=True)
    assert all("\n" not in r.text for r in results)


def test_lines_mode_stops_at_eos_and_the_cap_ends_the_rest():
    never = make_model("lstm", hidden=8, mode="lines", eos_bias=-30.0)
    assert {r.ended for r in beam_search(never, beam=3, length=7)} == {"length"}
    assert all(len(r.text) == 7 for r in beam_search(never, beam=3, length=7))
    always = make_model("lstm", hidden=8, mode="lines", eos_bias=30.0)
    best = beam_search(always, beam=3, length=7)[0]
    assert (len(best.text), best.ended, best.num_tokens) == (1, "eos", 2)   # a line is not blank
    assert beam_search(always, beam=2, length=0)[0].text == ""
    # without stopping at <EOS>, a continuation never holds it: it reads back as it is
    stream = make_model("lstm", hidden=8, mode="stream", eos_bias=30.0)
    for r in beam_search(stream, beam=3, length=5):
        assert r.ended == "length" and len(r.text) == 5 and "\n" not in r.text
    # so a newline stop string could never end one where no other token writes a newline
    with pytest.raises(UsageError, match="--stop with a newline never occurs"):
        beam_search(never, beam=2, length=9, stop_at_eos=False, stop="\n")
    with pytest.raises(UsageError, match="--stop with a newline never occurs"):
        beam_search(stream, beam=2, length=9, stop="a\n")
    writes = make_model("lstm", hidden=8, mode="stream", chars="ab\n")
    assert beam_search(writes, beam=2, length=9, stop="\n")


def test_stop_strings_end_beams_cut_or_kept():
    model = make_model("rnn", hidden=16, mode="stream")
    plain = beam_search(model, beam=4, length=40)
    stop = plain[0].text[5:7]
    kept = beam_search(model, beam=4, length=40, stop=[stop], keep_stop=True)
    cut = beam_search(model, beam=4, length=40, stop=[stop])
    assert [r.ended for r in kept] == [r.ended for r in cut]
    for k, c in zip(kept, cut):
        if k.ended == "stop":
            assert k.text.endswith(stop) and stop not in k.text[:-1]
            assert c.text == k.text[:-len(stop)]
            assert k.log_prob == pytest.approx(continuation_log_prob(model, "", k.text, False),
                                               abs=1e-4)
            assert c.log_prob == pytest.approx(continuation_log_prob(model, "", c.text, False),
                                               abs=1e-4)
            assert k.score == c.score       # ranked by the whole continuation
        else:
            assert stop not in k.text
    assert any(r.ended == "stop" for r in kept)


def test_a_stop_string_is_matched_in_the_generated_text_only():
    model = make_model("gru", hidden=16)
    first = beam_search(model, prime="the", beam=1, length=10)[0].text
    stop = "e" + first[0]         # spans the prime's end and the continuation's start
    result = beam_search(model, prime="the", beam=1, length=10, stop=stop, keep_stop=True)[0]
    assert result.text.startswith(first[0])
    assert result.ended != "stop" or len(result.text) >= len(stop) and result.text.endswith(stop)


def test_length_penalty_ranks_by_log_p_per_token():
    model = make_model("lstm", hidden=16, mode="lines", eos_bias=0.0, seed=3)
    for alpha in (0.5, 1.0):
        results = beam_search(model, beam=6, length=12, length_penalty=alpha)
        for r in results:
            assert r.score == pytest.approx(r.log_prob / r.num_tokens ** alpha)
        assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)
    plain = beam_search(model, beam=6, length=12)
    assert all(r.score == pytest.approx(r.log_prob, rel=1e-12, abs=1e-12) for r in plain)


def test_two_workers_find_what_one_does(monkeypatch):
    model = make_model("gru", hidden=16, mode="lines", eos_bias=0.5)
    found = {}
    for workers in (1, 2):
        monkeypatch.setattr(charlm.generation.beam, "worker_choices",
                            lambda hidden, w=workers: (w,))
        found[workers] = [(r.text, r.log_prob) for r in beam_search(model, prime="q", beam=5,
                                                                     length=30, stop="u")]
    assert found[1] == found[2]


def test_chunks_do_not_change_the_search(monkeypatch):
    model = make_model("lstm", hidden=16, mode="stream")
    whole = beam_search(model, beam=4, length=100)
    monkeypatch.setattr(charlm.generation.beam, "FIRST_CHUNK", 3)
    monkeypatch.setattr(charlm.generation.beam, "MAX_CHUNK", 5)
    assert beam_search(model, beam=4, length=100) == whole


def test_sample_with_beam_returns_the_texts():
    model = make_model("lstm", hidden=16, mode="lines", eos_bias=0.5)
    results = beam_search(model, beam=4, length=20)
    assert model.sample(beam=4, length=20) == [r.text for r in results]
    assert model.sample(beam=4, num=2, length=20) == [r.text for r in results[:2]]


@pytest.mark.parametrize("options,message", [
    (dict(beam=0), "--beam"), (dict(beam=257), "--beam"), (dict(beam=2.5), "--beam"),
    (dict(beam=True), "--beam"), (dict(beam=2, length_penalty=-1), "--length-penalty"),
    (dict(beam=3, num=4), "--num"), (dict(beam=3, num=0), "--num"),
    (dict(beam=3, temperature=0.5), "--temperature"), (dict(beam=3, top_k=5), "--top-k"),
    (dict(beam=3, top_p=0.5), "--top-p"), (dict(beam=3, seed=1), "--seed"),
    (dict(beam=3, on_text=print), "on_text"), (dict(length_penalty=1.0), "--length-penalty"),
    (dict(beam=256, length=100_000), "too large"), (dict(beam=2, stop=""), "--stop"),
    (dict(beam=2, prime="é"), "--prime"),
])
def test_bad_options_are_refused_by_name(options, message):
    with pytest.raises(UsageError, match=message):
        make_model().sample(**options)


# ---- the command ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    model = make_model("lstm", hidden=16, mode="lines", eos_bias=0.5)
    return save_model(model, tmp_path_factory.mktemp("beam") / "lines.npz"), model


def invoke(*args):
    return CliRunner().invoke(main, ["sample", *map(str, args)])


def test_command_json_gives_samples_and_log_probs_best_first(model_file):
    path, model = model_file
    result = invoke("--model", path, "--beam", 4, "--prime", "th", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    expected = beam_search(model, prime="th", beam=4)
    assert data["samples"] == [r.text for r in expected]
    assert data["log_probs"] == pytest.approx([r.log_prob for r in expected])
    assert data["ended"] == [r.ended for r in expected]
    one = json.loads(invoke("--model", path, "--beam", 4, "--num", 1, "--json").stdout)
    assert len(one["samples"]) == len(one["log_probs"]) == 1


def test_command_prints_each_result_with_its_log_p(model_file):
    path, model = model_file
    result = invoke("--model", path, "--beam", 3, "--prime", "th")
    lines = result.stdout.splitlines()
    assert result.exit_code == 0 and len(lines) == 3
    for line, r in zip(lines, beam_search(model, prime="th", beam=3)):
        assert f"log P {r.log_prob:8.3f}" in line and line.endswith("th" + r.text)


@pytest.mark.parametrize("args,pattern", [
    (["--beam", 0], "--beam"), (["--beam", 3, "--num", 4], "--num"),
    (["--beam", 3, "--temperature", 0.5], "--temperature"), (["--beam", 3, "--seed", 2], "--seed"),
    (["--beam", 3, "--novel"], "--novel"), (["--beam", 3, "--length-penalty", -2], "--length"),
    (["--length-penalty", 1], "--length-penalty"),
])
def test_command_bad_beam_options_end_with_one_line(model_file, args, pattern):
    result = run_charlm("sample", "--model", model_file[0], *args)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert pattern in result.stderr and "Traceback" not in result.stderr


def test_help_shows_the_new_options_with_examples():
    text = invoke("--help").stdout
    for option in ("--beam", "--length-penalty", "--stop", "--keep-stop", "--interactive",
                   "--corpus", "--novelty", "--novel", "Examples", "--beam 8"):
        assert option in text
