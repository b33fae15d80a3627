"""The novelty check: the suffix array and the longest shared substring against brute force,
lines mode's whole-line test, the training corpus recorded in the checkpoint (used while its
fingerprint matches), --novel drawing until enough samples are new, bad input."""
import json

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings, strategies as st

import charlm
from charlm.cli import main
from charlm.errors import UsageError
from charlm.generation.novelty import Reference, novel_samples, suffix_array

from conftest import NAMES, run_charlm
from tiny_models import make_model, save_model


@settings(max_examples=200, deadline=None)
@given(st.text("abcd", max_size=60) | st.text(max_size=30))
def test_suffix_array_sorts_the_suffixes(text):
    codes = np.frombuffer(text.encode("utf-32-le"), np.uint32)
    assert suffix_array(codes).tolist() == sorted(range(len(text)), key=lambda i: text[i:])


def test_suffix_array_of_long_repeats():
    text = "ab" * 300 + "a" * 200
    codes = np.frombuffer(text.encode("utf-32-le"), np.uint32)
    assert suffix_array(codes).tolist() == sorted(range(len(text)), key=lambda i: text[i:])


def brute_longest_shared(sample, corpus):
    return max((j - i for i in range(len(sample)) for j in range(i + 1, len(sample) + 1)
                if sample[i:j] in corpus), default=0)


@settings(max_examples=200, deadline=None)
@given(corpus=st.text("abc \n", min_size=1, max_size=80), sample=st.text("abcd \n", max_size=30))
def test_longest_shared_substring_matches_brute_force(corpus, sample):
    novelty = Reference(corpus, "stream", "corpus").check(sample)
    assert novelty.longest_shared == brute_longest_shared(sample, corpus)
    assert novelty.in_corpus == (sample in corpus)        # "" is in every text: never new


def test_lines_mode_checks_whole_lines_with_the_prime():
    check = Reference("Anna\nBob\nCarla\n", "lines", "names")
    assert check.check("Anna").in_corpus and not check.check("Ann").in_corpus
    assert check.check("nna", prime="A").in_corpus
    assert not check.check("Anna Bob").in_corpus
    assert check.check("Anna\nBob").in_corpus and not check.check("Anna\nBo").in_corpus
    assert check.check("").in_corpus               # an empty sample is never new
    assert check.check("Bob").to_json() == {"in_corpus": True}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny lines-mode model trained on a names file, which its checkpoint records."""
    folder = tmp_path_factory.mktemp("novelty")
    corpus = folder / "names.txt"
    corpus.write_text("\n".join(NAMES * 3) + "\n", encoding="utf-8")
    out = folder / "names.npz"
    charlm.train(str(corpus), out=str(out), hidden_size=16, num_layers=1, steps=30, seed=1,
                mode="lines", val_frac=0.0)
    return corpus, out


def test_the_recorded_training_corpus_is_used_while_it_is_unchanged(trained, tmp_path):
    corpus, out = trained
    model = charlm.load(str(out))
    copied = model.novelty(["Anna", "Annabel"])
    assert [n.in_corpus for n in copied] == [True, False]
    moved = tmp_path / "moved.npz"
    moved.write_bytes(out.read_bytes())
    original = corpus.read_text(encoding="utf-8")
    try:
        corpus.write_text(original + "Zed\n", encoding="utf-8")
        with pytest.raises(UsageError, match="has changed since"):
            charlm.load(str(moved)).novelty(["Anna"])
        corpus.unlink()
        with pytest.raises(UsageError, match="is gone"):
            charlm.load(str(moved)).novelty(["Anna"])
    finally:
        corpus.write_text(original, encoding="utf-8")
    other = tmp_path / "other.txt"
    other.write_text("Annabel\n", encoding="utf-8")
    assert model.novelty(["Annabel"], corpus=str(other))[0].in_corpus


def test_the_recorded_corpus_is_read_in_its_training_encoding(tmp_path):
    corpus = tmp_path / "noms.txt"
    corpus.write_text("Zoë\nRenée\nJosé\nAnaïs\n" * 5, encoding="latin-1")
    out = tmp_path / "noms.npz"
    charlm.train(str(corpus), out=str(out), encoding="latin-1", hidden_size=8, num_layers=1,
                 steps=2, mode="lines", val_frac=0.0)
    found = charlm.load(str(out)).novelty(["Renée", "Renata"])
    assert [n.in_corpus for n in found] == [True, False]


def test_a_model_without_a_recorded_corpus_asks_for_one(tmp_path):
    path = save_model(make_model(mode="lines"), tmp_path / "bare.npz")
    result = run_charlm("sample", "--model", path, "--novelty")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "--corpus PATH" in result.stderr


def test_novel_draws_until_enough_distinct_new_samples(trained):
    corpus, out = trained
    model = charlm.load(str(out))
    check = Reference(corpus.read_text(encoding="utf-8"), "lines", "names")
    texts, novelties, drawn, copied = novel_samples(model, check, 5, seed=3, temperature=1.5)
    assert len(texts) == len(set(texts)) == 5 and drawn >= 5
    assert all(n.new for n in novelties)
    assert not any(t in NAMES or t == "" for t in texts)
    assert novel_samples(model, check, 5, seed=3, temperature=1.5)[0] == texts


def test_command_novelty_json_and_the_cap_message(trained, tmp_path):
    corpus, out = trained
    result = CliRunner().invoke(main, ["sample", "--model", str(out), "--num", 6, "--seed", 2,
                                       "--novelty", "--json"])
    data = json.loads(result.stdout)
    assert [n["in_corpus"] for n in data["novelty"]] == [t in NAMES or t == ""
                                                         for t in data["samples"]]
    novel = json.loads(CliRunner().invoke(main, ["sample", "--model", str(out), "--num", 3,
                                                 "--novel", "--seed", 2, "--json"]).stdout)
    assert len(novel["samples"]) == 3 and novel["drawn"] >= 3
    # a model that ends every line after its first letter, and a corpus of every letter: no new
    # sample is possible
    letters = tmp_path / "letters.txt"
    letters.write_text("a\nb\nc\n", encoding="utf-8")
    brief = save_model(make_model(mode="lines", eos_bias=40.0, chars="abc"), tmp_path / "brief.npz")
    capped = run_charlm("sample", "--model", brief, "--novel", "--corpus", letters, "--num", 2)
    assert capped.returncode == 0 and "only 0 of 2" in capped.stderr and "1,000 draws" in capped.stderr
    assert "repeats its training text" in capped.stderr
    # greedy draws of a corpus that lacks them: new, but one text over and over
    (tmp_path / "other.txt").write_text("x\n", encoding="utf-8")
    greedy = run_charlm("sample", "--model", brief, "--novel", "--corpus", tmp_path / "other.txt",
                        "--num", 3, "--temperature", 0)
    assert "only 1 of 3" in greedy.stderr and "repeats its own samples" in greedy.stderr


def test_command_marks_samples_in_the_text(trained):
    corpus, out = trained
    result = run_charlm("sample", "--model", out, "--num", 4, "--seed", 1, "--corpus", corpus)
    assert result.returncode == 0, result.stderr
    texts = charlm.load(str(out)).sample(num=4, seed=1)
    notes = ["[in the corpus]" if t in NAMES else "[new]" for t in texts]
    if all("\n" not in t for t in texts):          # one line each, the note after the text
        assert result.stdout.splitlines() == [f"{t}  {n}" for t, n in zip(texts, notes)]
    else:                                          # blank lines between, the note below
        assert result.stdout[:-1].split("\n\n") == [f"{t}\n{n}" for t, n in zip(texts, notes)]


def test_a_missing_corpus_is_one_line_and_exit_3(trained, tmp_path):
    result = run_charlm("sample", "--model", trained[1], "--corpus", tmp_path / "none.txt")
    assert result.returncode == 3 and result.stderr.count("\n") == 1
    assert "none.txt" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("encoding, problem, convert", [
    ("latin-1", "is not valid utf-8: byte 0xeb", "iconv -f ENCODING -t utf-8"),
    ("utf-16", "looks like UTF-16 text", "iconv -f utf-16 -t utf-8")])
def test_a_corpus_not_in_utf8_asks_for_a_conversion_not_an_option(tmp_path, encoding, problem,
                                                                  convert):
    """sample has no --encoding: the error must not advise one."""
    model = save_model(make_model(mode="lines"), tmp_path / "m.npz")
    corpus = tmp_path / "names.txt"
    corpus.write_text("Zo\u00eb\nRen\u00e9e\n", encoding=encoding)
    result = run_charlm("sample", "--model", model, "--corpus", corpus)
    assert result.returncode == 3 and result.stderr.count("\n") == 1, result.stderr
    assert problem in result.stderr and f"convert the file first, e.g. {convert}" in result.stderr
    assert "--encoding" not in result.stderr and result.stdout == ""


def test_stream_mode_reports_the_longest_shared_substring(tmp_path):
    model = make_model("gru", hidden=16, mode="stream")
    text = model.sample(length=100, seed=1)[0]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("xx" + text[10:40] + "xx", encoding="utf-8")
    data = json.loads(CliRunner().invoke(main, [
        "sample", "--model", str(save_model(model, tmp_path / "m.npz")), "--length", 100,
        "--seed", 1, "--corpus", str(corpus), "--json"]).stdout)
    assert data["samples"] == [text]
    assert data["novelty"] == [{"in_corpus": False, "longest_shared":
                                brute_longest_shared(text, "xx" + text[10:40] + "xx")}]
    assert data["novelty"][0]["longest_shared"] >= 30


def test_novel_draws_for_a_large_num_ask_no_more_than_one_call_allows():
    """--novel --num N draws twice the samples still wanted, in calls that each stay within
    --num's limit, however large N is."""
    from types import SimpleNamespace

    from charlm.generation.options import MAX_NUM
    asked = []

    def sample(num, prime, seed, **options):
        asked.append(num)
        return [f"{seed}-{k}" for k in range(num)]

    check = SimpleNamespace(check=lambda text, prime: SimpleNamespace(new=True))
    found, _, drawn, _ = novel_samples(SimpleNamespace(sample=sample), check, MAX_NUM // 2 + 1)
    assert len(found) == MAX_NUM // 2 + 1 and max(asked) <= MAX_NUM and drawn == sum(asked)
