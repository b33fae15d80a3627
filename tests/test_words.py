"""Word models (--tokens words, docs/words.md), end to end through the installed charlm command:
training, sampling, scoring in bits per character with the <UNK> spelling, info, the checkpoint,
older checkpoints, and every input refused in one line."""
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from charlm.text import words
from charlm.text.vocab import UNK_ID, drawable
from conftest import run_charlm
from reference import spelling_log_prob

SUBJECTS = ["the cat", "the dog", "a bird", "my friend", "the old man"]
VERBS = ["sat on", "ran to", "looked at", "slept near", "don't like"]
PLACES = ["the mat.", "the well-known house.", "a red box.", "the garden!", "o’er the hill?"]


def write_corpus(path):
    """Running text from a small grammar, in paragraphs, plus a few words seen once (<UNK>)."""
    rng = np.random.default_rng(3)
    paragraphs = []
    for k in range(60):
        sentences = [f"{rng.choice(SUBJECTS).capitalize()} {rng.choice(VERBS)} "
                     f"{rng.choice(PLACES)}" for _ in range(4)]
        if k % 15 == 0:
            sentences.append(f"Rare{k}word came.")
        paragraphs.append(" ".join(sentences))
    path.write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(folder, corpus, model, train --json summary) of one small word model."""
    folder = tmp_path_factory.mktemp("words")
    corpus = write_corpus(folder / "prose.txt")
    result = run_charlm("train", corpus, "--tokens", "words", "--hidden", 48, "--layers", 1,
                        "--steps", 120, "--batch-size", 8, "--seq-len", 24, "--lr", 0.01,
                        "--dropout", 0, "--out", folder / "w.npz", "--json", cwd=folder)
    assert result.returncode == 0, result.stderr
    return folder, corpus, folder / "w.npz", json.loads(result.stdout)


def charlm_json(*args):
    result = run_charlm(*args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def assert_one_line_error(result, code, pattern):
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert pattern in lines[0], lines[0]


# ---- how text is cut -------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.text())
def test_a_text_is_exactly_the_concatenation_of_its_tokens(text):
    tokens = words.split(text)
    assert "".join(tokens) == text
    assert all(tokens)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["cat", "don't", " ", "  ", "\n", ".", "'", "-", "x1", "é"]),
                max_size=12))
def test_each_token_reads_back_as_itself(parts):
    for t in words.split("".join(parts)):
        assert words.split(t) == [t]


def test_words_are_cut_as_the_docs_say():
    assert words.split("Don't go, well-known o’er 1990s!\n\n  'tis x_y") == [
        "Don't", " ", "go", ",", " ", "well-known", " ", "o’er", " ", "1990s", "!", "\n", "\n",
        "  ", "'", "tis", " ", "x", "_", "y"]
    assert words.split("Ελλάδα -a- b--c") == ["Ελλάδα", " ", "-", "a", "-", " ", "b", "-", "-",
                                               "c"]


# ---- train, sample, score, info ----------------------------------------------------------------

def test_train_reports_words_and_characters_per_second(trained):
    _, corpus, model, summary = trained
    assert summary["tokens"] == "words" and summary["steps"] == 120
    assert summary["chars_per_sec"] > summary["tokens_per_sec"] > 0      # tokens are longer
    assert summary["best_val_bpc"] == pytest.approx(summary["best_val_loss"] / math.log(2))
    info = charlm_json("info", model, "--json")
    assert info["tokens"] == "words" and info["config"]["tokens"] == "words"
    assert info["vocab_size"] == summary["vocab_size"] == info["config"]["vocab_size"] + 2
    assert info["vocab"][:2] == ["<EOS>", "<UNK>"] and "cat" in info["vocab"]
    assert "Rare0word" not in info["vocab"]          # seen once: <UNK>
    shown = run_charlm("info", model)
    assert shown.returncode == 0 and "words, punctuation, whitespace" in shown.stdout


def test_validation_is_bits_per_character_of_the_held_out_text(trained):
    """Stream mode holds out the last 10% of the tokens; validation scores them from <EOS> as
    score --file scores the same text, <UNK>s spelt out, per character."""
    folder, corpus, model, summary = trained
    tokens = words.split(corpus.read_text(encoding="utf-8"))
    held = folder / "held.txt"
    held.write_text("".join(tokens[int(len(tokens) * 0.9):]), encoding="utf-8")
    result = charlm_json("score", "--model", model, "--file", held, "--json")["results"][0]
    assert result["num_chars"] == len(held.read_text(encoding="utf-8"))
    assert result["bits_per_char"] == pytest.approx(summary["best_val_bpc"], rel=1e-5)


def test_samples_never_hold_unk_and_read_back_as_the_same_tokens(trained):
    _, _, model, _ = trained
    vocab = __import__("charlm").load(str(model)).vocab
    assert not drawable(vocab, "stream")[:, UNK_ID].any()
    greedy = charlm_json("sample", "--model", model, "--temperature", 0, "--length", 40,
                         "--json")["samples"][0]
    assert "<UNK>" not in greedy and len(words.split(greedy)) == 40
    assert all(t in vocab.index for t in words.split(greedy))
    # hot samples draw unlikely pairs; a word never follows a word, nor spaces spaces, so each
    # sample reads back as the tokens drawn (this corpus has no apostrophe or hyphen of its own)
    drawn = charlm_json("sample", "--model", model, "--num", 4, "--length", 300, "--seed", 5,
                        "--temperature", 2.5, "--json")["samples"]
    assert len(drawn) == 4 and not any("<UNK>" in s for s in drawn)
    for sample in drawn:
        assert len(words.split(sample)) == 300
        assert all(t in vocab.index for t in words.split(sample))
    rows = drawable(vocab, "stream")
    assert rows.shape == (6, len(vocab))
    assert not rows[4, vocab.index["cat"]] and rows[4, vocab.index[" "]]
    assert not rows[5, vocab.index[" "]] and rows[5, vocab.index["cat"]]
    beams = charlm_json("sample", "--model", model, "--beam", 3, "--length", 8, "--json")
    assert len(beams["samples"]) == 3 and beams["log_probs"] == sorted(beams["log_probs"])[::-1]
    stopped = charlm_json("sample", "--model", model, "--length", 60, "--seed", 1, "--stop", ".",
                          "--json")["samples"][0]
    assert "." not in stopped


def test_a_prime_with_unknown_words_reads_them_as_unk_and_names_them_once(trained):
    _, _, model, _ = trained
    result = run_charlm("sample", "--model", model, "--prime", "Zork and Zork saw the cat",
                        "--length", 5, "--seed", 1)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Zork and Zork saw the cat")
    notes = [line for line in result.stderr.splitlines() if "<UNK>" in line]
    assert len(notes) == 1 and "'Zork'" in notes[0] and notes[0].count("Zork") == 1


def test_score_is_per_character_with_unknown_words_spelt_out(trained):
    _, _, model, _ = trained
    known, unknown = "The cat sat on the mat.", "The cat sat on the Zyzzyva."
    results = charlm_json("score", "--model", model, known, unknown, "--per-char",
                          "--json")["results"]
    npz = np.load(model, allow_pickle=False)
    for r, text in zip(results, (known, unknown)):
        assert r["tokens"] == "words" and r["num_chars"] == len(text)
        assert [e["token"] for e in r["per_token"]] == words.split(text)
        assert r["num_tokens"] == len(words.split(text))
        total = sum(e["log_prob"] for e in r["per_token"])
        assert r["log_prob"] == pytest.approx(total, rel=1e-9)
        assert r["bits_per_char"] == pytest.approx(-total / math.log(2) / len(text), rel=1e-9)
    assert results[0]["unknown"] == [] and results[0]["unknown_tokens"] == 0
    assert results[0]["spelling_nats"] == 0
    r = results[1]
    assert r["unknown"] == ["Zyzzyva"] and r["unknown_tokens"] == 1
    assert r["unknown_share"] == pytest.approx(1 / r["num_tokens"])
    assert r["spelling_nats"] == pytest.approx(-spelling_log_prob(npz, "Zyzzyva"), rel=1e-9)
    # the <UNK> token pays its own log-probability and its spelling: more than "mat" did
    assert r["per_token"][-2]["log_prob"] < results[0]["per_token"][-2]["log_prob"]
    assert r["bits_per_char"] > results[0]["bits_per_char"]


# ---- the checkpoint ----------------------------------------------------------------------------

def test_checkpoint_round_trip(trained, tmp_path):
    from charlm.store import checkpoint
    _, _, model, _ = trained
    npz = np.load(model, allow_pickle=False)
    config = json.loads(npz["config"].item())
    assert config["tokens"] == "words" and config["vocab_size"] == len(npz["vocab"]) - 2
    assert "cat" in npz["vocab"].tolist()
    assert npz["words.char_log_probs"].shape == (len(npz["words.chars"]) + 1,)
    loaded = checkpoint.load(str(model), with_training_state=True)
    copy = tmp_path / "copy.npz"
    checkpoint.save(str(copy), loaded)
    again = checkpoint.load(str(copy))
    assert again.vocab.kind == "words" and again.vocab.tokens == loaded.vocab.tokens
    assert again.vocab.spelling.log_prob("Qwx") == loaded.vocab.spelling.log_prob("Qwx")
    text = "The dog ran to the Qwx."
    first = charlm_json("score", "--model", model, text, "--json")["results"][0]
    second = charlm_json("score", "--model", copy, text, "--json")["results"][0]
    assert first["log_prob"] == second["log_prob"]


def rewrite_config(src, dst, change):
    npz = np.load(src, allow_pickle=False)
    arrays = {k: npz[k] for k in npz.files}
    config = json.loads(arrays["config"].item())
    change(config)
    arrays["config"] = np.array(json.dumps(config))
    np.savez(dst, **arrays)


def test_a_checkpoint_without_tokens_is_a_character_model(tmp_path, names_file):
    result = run_charlm("train", names_file, "--steps", 3, "--hidden", 16, "--out", "c.npz")
    assert result.returncode == 0, result.stderr
    old = tmp_path / "old.npz"

    def drop(config):
        config.pop("tokens")
        config.pop("vocab_size")
    rewrite_config(tmp_path / "c.npz", old, drop)
    assert charlm_json("info", old, "--json")["tokens"] == "chars"
    score = charlm_json("score", "--model", old, "Anna", "--json")["results"][0]
    assert score["num_tokens"] == 5 and "num_chars" not in score


def test_an_unknown_token_kind_is_refused_in_one_line(trained, tmp_path):
    _, _, model, _ = trained
    odd = tmp_path / "odd.npz"
    rewrite_config(model, odd, lambda config: config.update(tokens="bytes"))
    for command in (["info", odd], ["score", "--model", odd, "x"], ["sample", "--model", odd]):
        assert_one_line_error(run_charlm(*command), 4, "'bytes'")


# ---- refused -----------------------------------------------------------------------------------

@pytest.mark.parametrize("options, pattern", [
    (["--tokens", "bytes"], "'bytes' is not one of 'chars', 'words'"),
    (["--tokens", "words", "--vocab-size", "0"], "--vocab-size must be >= 1"),
    (["--vocab-size", "10"], "--vocab-size applies to a word model"),
    (["--tokens", "words", "--min-count", "100000"], "--min-count 100000 leaves no token"),
    (["--tokens", "words", "--min-count", "100000", "--vocab-size", "10"], "lower it"),
])
def test_bad_options_are_one_line_and_write_nothing(tmp_path, prose_file, options, pattern):
    result = run_charlm("train", prose_file, *options, "--steps", 1, "--out", "m.npz")
    assert_one_line_error(result, 2, pattern)
    assert not (tmp_path / "m.npz").exists()


def test_a_corpus_with_no_word_is_refused(tmp_path):
    corpus = tmp_path / "marks.txt"
    corpus.write_text("!?!... ;;; --- ***\n\n" * 50, encoding="utf-8")
    result = run_charlm("train", corpus, "--tokens", "words", "--steps", 1, "--out", "m.npz")
    assert_one_line_error(result, 3, "has no word")
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.parametrize("command, pattern", [
    (["sample", "--beam", "2", "--stop", "."], "--stop with --beam"),
    (["score", "--file", "x.txt", "--windows", "8"], "a word model's targets are word tokens"),
])
def test_what_does_not_work_with_words_yet_is_refused(trained, tmp_path, command, pattern):
    _, _, model, _ = trained
    (tmp_path / "x.txt").write_text("The cat sat.\n", encoding="utf-8")
    result = run_charlm(*command, "--model", model)
    assert_one_line_error(result, 2, pattern)
    assert not (tmp_path / "r.html").exists()


def test_novelty_checks_a_word_model_s_samples_against_its_corpus(trained):
    folder, corpus, model, _ = trained
    text = corpus.read_text(encoding="utf-8")
    data = charlm_json("sample", "--model", model, "--num", 6, "--length", 12, "--seed", 1,
                       "--novelty", "--json")
    assert len(data["novelty"]) == 6
    for sample, check in zip(data["samples"], data["novelty"]):
        longest = max(n for n in range(len(sample) + 1)
                      if any(sample[i:i + n] in text for i in range(len(sample) - n + 1)))
        assert check == {"in_corpus": longest == len(sample), "longest_shared": longest}
    novel = charlm_json("sample", "--model", model, "--num", 3, "--length", 12, "--seed", 1,
                        "--novel", "--json")
    assert len(novel["samples"]) == 3
    assert all(s not in text and not c["in_corpus"] for s, c in zip(novel["samples"],
                                                                   novel["novelty"]))


def test_gradients_count_distance_in_tokens(trained):
    _, _, model, _ = trained
    text = "The cat sat on the mat. The dog ran to a red box."
    data = charlm_json("gradients", text, "--model", model, "--max-distance", 3, "--json")
    assert data["curves"][0]["counts"][0] == len(words.split(text))
    assert data["distance_unit"] == "tokens"
    shown = run_charlm("gradients", text, "--model", model, "--max-distance", 3)
    assert shown.returncode == 0 and "distance k (tokens)" in shown.stdout
    mixed = run_charlm("gradients", text, "--model", model, "--cell", "rnn", "--max-distance", 3)
    assert_one_line_error(mixed, 2, "give models of one kind")


def test_neurons_rank_units_against_features_of_tokens(trained):
    """neurons on a word model: one activation per token, the features of word tokens, and the
    plain output listing tokens."""
    from charlm.views.neurons import features
    _, _, model, _ = trained
    text = 'The cat said: "the dog (a red box) sat."\nThe old man ran to the Zork hill!'
    tokens = words.split(text)
    data = charlm_json("neurons", text, "--model", model, "--json", "--top", 40,
                       "--per-feature", 0)
    assert data["tokens"] == tokens and len(data["activations"]) == len(tokens)
    assert set(data["correlations"]) == set(features(tokens, "words"))
    assert {"word", "capitalised word", "position in sentence"} <= set(data["correlations"])
    assert "vowel" not in data["correlations"] and "start of word" not in data["correlations"]
    assert {r["feature"] for r in data["ranking"]} <= set(data["correlations"])
    shown = run_charlm("neurons", text, "--model", model, "--unit", 0)
    assert shown.returncode == 0, shown.stderr
    rows = shown.stdout.split("position, token, activation\n", 1)[1].splitlines()
    assert [row.split()[1] for row in rows[:4]] == ["The", "␣", "cat", "␣"]
    assert len(rows) == len(tokens)
    assert "6 token(s) not in the model's vocabulary" in shown.stderr and "'Zork'" in shown.stderr


def test_scores_agree_with_the_reference_network(trained):
    """Each token's log P from score against the float64 network of tests/reference.py, run on
    the text's token ids, with the checkpoint's spelling of each <UNK> added."""
    from reference import ReferenceNetwork
    _, _, model, _ = trained
    text = "The old man looked at the Qwerty house."
    result = charlm_json("score", "--model", model, text, "--per-char", "--json")["results"][0]
    npz = np.load(model, allow_pickle=False)
    index = {t: i for i, t in enumerate(npz["vocab"].tolist()) if i >= 2}
    tokens = words.split(text)
    ids = [index.get(t, UNK_ID) for t in tokens]
    config = json.loads(npz["config"].item())
    x = np.array([0] + ids[:-1])[:, None]
    log_probs = ReferenceNetwork(config["cell"], npz).run(x)["log_probs"][:, 0]
    expected = [log_probs[t, i] + (spelling_log_prob(npz, tokens[t]) if i == UNK_ID else 0.0)
                for t, i in enumerate(ids)]
    assert ids.count(UNK_ID) == 1
    assert [e["log_prob"] for e in result["per_token"]] == pytest.approx(expected, abs=1e-5)


def test_lines_mode_and_resume(tmp_path):
    """A word model of lines: each line an example ending in <EOS> (counted as one character),
    resumed where it stopped."""
    corpus = tmp_path / "lines.txt"
    corpus.write_text("the cat sat\nthe dog ran\na bird flew away\nmy friend came home\n" * 30,
                      encoding="utf-8")
    first = charlm_json("train", corpus, "--tokens", "words", "--mode", "lines", "--steps", 6,
                        "--hidden", 16, "--out", "l.npz", "--json")
    assert first["config"]["mode"] == "lines" and first["vocab_size"] == 16   # 13 words, the space
    resumed = charlm_json("train", corpus, "--out", "l.npz", "--resume", "--steps", 9, "--json")
    assert resumed["steps"] == 9 and resumed["tokens"] == "words"
    score = charlm_json("score", "--model", "l.npz", "the cat sat", "--json")["results"][0]
    assert score["num_tokens"] == 6 and score["num_chars"] == len("the cat sat") + 1
    # the views read a newline as a lines-mode model's <EOS>
    shown = charlm_json("neurons", "the cat sat\nthe dog ran", "--model", "l.npz", "--json")
    assert len(shown["activations"]) == len(shown["tokens"]) == 11


@settings(max_examples=300, deadline=None)
@given(st.text(st.sampled_from("ab1é'’- \t\n._")), st.lists(st.integers(0, 40), max_size=6))
def test_a_text_cut_in_pieces_gives_the_tokens_of_the_whole(text, cuts):
    """What a prepared corpus's word copy relies on: it cuts the text a piece at a time."""
    cuts = sorted(min(c, len(text)) for c in cuts)
    pieces = [text[a:b] for a, b in zip([0] + cuts, cuts + [len(text)])]
    assert [t for part in words.split_chunks(pieces) for t in part] == words.split(text)


def test_a_file_cut_by_chars_is_read_to_its_last_whole_token(trained, tmp_path):
    _, _, model, _ = trained
    held = tmp_path / "held.txt"
    held.write_text("The cat sat on the mat. The dog ran to a red box.\n", encoding="utf-8")
    vocab = words.WordVocab(["<EOS>", "<UNK>", "the"], words.Spelling(["a"], [-1.0, -2.0], 0.5))
    assert vocab.whole_tokens("The cat sa") == "The cat " and vocab.whole_tokens("sa") == "sa"
    assert vocab.whole_tokens("the well-") == "the " and vocab.whole_tokens("a - ") == "a -"
    for command in (["neurons", "--top", 3], ["gradients", "--max-distance", 2]):
        done = run_charlm(*command, "--file", held, "--chars", 10, "--model", model)
        assert done.returncode == 0, done.stderr
        assert "not in" not in done.stderr          # "sa", cut from "sat", is no <UNK>
    cut = charlm_json("neurons", "--file", held, "--chars", 10, "--model", model, "--json")
    assert "".join(cut["tokens"]) == "The cat "


def test_beam_search_follows_the_drawing_rule_so_results_read_back_as_found(trained, tmp_path):
    """A model pushed to put a word right after a word: beam search may not, as drawing may not,
    so every result reads back through score as the tokens the search chose, with its log P."""
    import charlm
    pushed = words_pushed(trained[2], tmp_path)
    beams = charlm_json("sample", "--model", pushed, "--beam", 3, "--length", 6, "--json")
    for text, log_p in zip(beams["samples"], beams["log_probs"]):
        assert len(words.split(text)) == 6, text
        assert charlm.load(str(pushed)).score(text).log_prob == pytest.approx(log_p, abs=1e-4)


def words_pushed(model, folder):
    """A copy of the word model whose output bias puts every word far above any other token."""
    import charlm
    from charlm.store import checkpoint
    saved = checkpoint.load(str(model))
    vocab = charlm.load(str(model)).vocab
    is_word = np.array([t[:1].isalnum() for t in vocab.tokens])
    saved.weights["out.b"][...] = np.where(is_word, 8.0, 0.0)
    pushed = folder / "pushed.npz"
    checkpoint.save(str(pushed), saved)
    return pushed


@pytest.mark.parametrize("prime", ["the Zork", "Zork"])
def test_a_prime_ending_in_an_unknown_word_is_not_followed_by_a_word(trained, tmp_path, prime):
    """The prime's last token reads as <UNK>, which is of no class by its id; drawing, beam
    search and the chooser still put no word right after it, so it does not grow into another."""
    import charlm
    from charlm.generation.interactive import Chooser
    model = charlm.load(str(words_pushed(trained[2], tmp_path)))
    assert "Zork" not in model.vocab.index
    for text in model.sample(num=8, length=3, prime=prime, seed=3):
        assert not words.is_word(words.split(text)[0]), text
    base = model.score(prime).log_prob
    for found in model.beam_search(prime=prime, beam=3, length=3):
        assert not words.is_word(words.split(found.text)[0]), found.text
        assert model.score(prime + found.text).log_prob - base == pytest.approx(found.log_prob,
                                                                              abs=1e-4)
    offered = Chooser(model, prime=prime).probabilities()
    is_word = np.array([words.is_word(t) for t in model.vocab.tokens])
    assert offered[is_word].sum() == 0 and offered.sum() == pytest.approx(1.0)
