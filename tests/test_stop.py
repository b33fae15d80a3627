"""Stop strings: the scanner against a plain search of the whole text however the text arrives,
samples cut where the unstopped sample has its first stop string (one sample, a batch, streamed,
the generator), samples that stop consuming work, bad stop strings, the command line."""
import json
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings, strategies as st

import charlm.generation.sampler
from charlm.cli import main
from charlm.errors import UsageError
from charlm.generation.sampler import Generation
from charlm.generation.stops import StopScanner, first_stop

from conftest import charlm_command
from tiny_models import make_model, save_model


def expected_cut(text, stops, keep):
    """text up to its first stop string (by where it ends; the longer at a tie), by plain search."""
    best = None
    for end in range(1, len(text) + 1):
        for s in sorted(stops, key=len, reverse=True):
            if text[:end].endswith(s):
                best = (end - len(s), end)
                break
        if best:
            break
    if best is None:
        return text, False
    return text[:best[1] if keep else best[0]], True


@settings(max_examples=300, deadline=None)
@given(text=st.text("abc\n", max_size=40), stops=st.lists(st.text("abc\n", min_size=1, max_size=4),
                                                         min_size=1, max_size=3),
       cuts=st.lists(st.integers(0, 40), max_size=6), keep=st.booleans())
def test_scanner_finds_the_first_stop_whatever_the_pieces(text, stops, cuts, keep):
    scanner = StopScanner(tuple(stops), keep)
    edges = sorted({0, len(text), *[min(c, len(text)) for c in cuts]})
    given_out = "".join(scanner.feed(text[a:b]) for a, b in zip(edges[:-1], edges[1:]))
    given_out += scanner.finish()
    assert (given_out, scanner.stopped) == expected_cut(text, stops, keep)


def test_first_stop_prefers_the_earliest_end_then_the_longer():
    assert first_stop("xxabcd", ("bcd", "abc")) == (2, 5)
    assert first_stop("xxabc", ("bc", "abc")) == (2, 5)
    assert first_stop("xxabc", ("zz",)) is None


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_sample_is_the_unstopped_one_cut_at_its_first_stop(cell):
    model = make_model(cell, hidden=16)
    whole = model.sample(length=300, seed=5)[0]
    for stops in ([whole[100:103]], [whole[40:42], whole[250:255]], ["zqzqz"]):
        for keep in (False, True):
            expected, _ = expected_cut(whole, stops, keep)
            assert model.sample(length=300, seed=5, stop=stops, keep_stop=keep) == [expected]
            pieces = []
            assert model.sample(length=300, seed=5, stop=stops, keep_stop=keep,
                                on_text=pieces.append) == [expected]
            assert "".join(pieces) == expected
            assert "".join(model.stream(length=300, seed=5, stop=stops,
                                        keep_stop=keep)) == expected


def test_each_sample_of_a_batch_stops_on_its_own():
    model = make_model("lstm", hidden=16)
    whole = model.sample(num=6, length=200, seed=2)
    stops = ["e", "o "]
    cut = model.sample(num=6, length=200, seed=2, stop=stops)
    assert cut == [expected_cut(w, stops, False)[0] for w in whole]
    assert len(set(map(len, cut))) > 1


def test_stopped_samples_stop_consuming_work(monkeypatch):
    model = make_model("lstm", hidden=16)
    steps = []
    original = Generation.step

    def counting(self, forced, uniforms, *options):
        steps.append(len(uniforms))
        return original(self, forced, uniforms, *options)

    monkeypatch.setattr(Generation, "step", counting)
    text = model.sample(length=10_000, seed=5)[0]
    assert sum(steps) == 10_000
    steps.clear()
    stop = text[30:33]
    assert model.sample(length=10_000, seed=5, stop=stop)[0] == text[:text.find(stop)]
    # chunks of 16, 32, 64, ...: the work ends with the chunk in which the stop string ends
    end, chunks = text.find(stop) + len(stop), []
    while sum(chunks) < end:
        chunks.append(charlm.generation.sampler.FIRST_CHUNK * 2 ** len(chunks))
    assert steps == chunks


def test_a_stop_written_as_newline_by_eos_is_found_in_stream_mode():
    model = make_model("lstm", hidden=8, eos_bias=40.0)          # draws <EOS>, written as \n
    assert model.sample(length=20, seed=0, stop="\n\n", keep_stop=True) == ["\n\n"]


@pytest.mark.parametrize("stop,message", [
    ("", "must not be empty"), (["ok", ""], "must not be empty"), (["é"], "never occur"),
    ([3], "must be text"),
])
def test_bad_stop_strings_are_refused(stop, message):
    model = make_model()
    with pytest.raises(UsageError, match=message):
        model.sample(stop=stop)
    with pytest.raises(UsageError, match=message):
        model.stream(stop=stop)          # checked when called, not at the first piece


# ---- the command ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    model = make_model("gru", hidden=16)
    return save_model(model, tmp_path_factory.mktemp("stop") / "stream.npz"), model


def invoke(*args):
    return CliRunner().invoke(main, ["sample", *map(str, args)])


def test_command_reads_escapes_and_stops_each_sample(model_file):
    path, model = model_file
    whole = model.sample(num=3, length=150, seed=4)
    result = invoke("--model", path, "--num", 3, "--length", 150, "--seed", 4, "--json",
                    "--stop", "\\n", "--stop", "k")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["samples"] == [expected_cut(w, ["\n", "k"], False)[0]
                                                   for w in whole]
    kept = invoke("--model", path, "--length", 150, "--seed", 4, "--stop", "k", "--keep-stop")
    single = model.sample(length=150, seed=4)[0]
    assert kept.stdout == expected_cut(single, ["k"], True)[0] + "\n"


def test_command_refuses_an_empty_stop_in_one_line(model_file):
    result = subprocess.run(charlm_command() + ["sample", "--model", str(model_file[0]),
                                                "--stop", ""],
                            capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "--stop" in result.stderr and "Traceback" not in result.stderr


def test_beam_and_stops_from_the_command(model_file):
    path, model = model_file
    data = json.loads(invoke("--model", path, "--beam", 3, "--length", 60, "--stop", "a",
                             "--json").stdout)
    expected = model.beam_search(beam=3, length=60, stop="a")
    assert data["samples"] == [r.text for r in expected]
    assert all("a" not in text for text in data["samples"])
    assert np.allclose(data["log_probs"], [r.log_prob for r in expected])
