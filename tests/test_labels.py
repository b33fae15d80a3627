"""Labels (issue 26) end to end through the installed charlm: a corpus where the label decides the
text (each label's lines drawn from an alphabet of its own) must be classified without a mistake
on held-out lines and must give samples of a label in that label's alphabet only; posteriors are
Bayes' rule over the per-label scores; every bad input ends in one line and its exit code, with
nothing written. A word model of a labelled corpus (each label's lines drawn from words of its
own) does the same, and scores a text given a label in bits per character, <UNK>s spelt out."""
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import charlm
from conftest import run_charlm

ALPHABETS = {"low": "abcdef", "mid": "ghijkl", "top": "mnopqr"}
TRAIN_LINES = 4000    # fewer, and the model learns its training lines by heart before it learns
                      # to keep to the label's alphabet (validation picks the weights before)
SHARP = "0.5"         # the temperature of the purity test: a model trained for seconds still
                      # puts about 0.2% on the other alphabets at the first character


def labelled_lines(count, seed):
    rng = np.random.default_rng(seed)
    names = sorted(ALPHABETS)
    lines = []
    for _ in range(count):
        label = names[rng.integers(len(names))]
        alphabet = ALPHABETS[label]
        lines.append((label, "".join(rng.choice(list(alphabet), rng.integers(3, 10)))))
    return lines


def write_tsv(path, lines):
    path.write_text("".join(f"{label}\t{text}\n" for label, text in lines), encoding="utf-8")
    return path


def ok(result):
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A labelled model of the alphabet corpus, and a held-out file of the same kind."""
    folder = tmp_path_factory.mktemp("labels")
    corpus = write_tsv(folder / "train.tsv", labelled_lines(TRAIN_LINES, 1))
    held = write_tsv(folder / "held.tsv", labelled_lines(90, 2))
    model = folder / "labelled.npz"
    ok(run_charlm("train", corpus, "--labels", "--cell", "gru", "--hidden", 32, "--layers", 1,
                  "--dropout", 0, "--steps", 600, "--out", model, "--json", cwd=folder))
    return {"folder": folder, "corpus": corpus, "held": held, "model": model}


@pytest.fixture(scope="module")
def unlabelled(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plain")
    (folder / "plain.txt").write_text("abc\nabd\nacd\nbcd\nbce\n", encoding="utf-8")
    model = folder / "plain.npz"
    ok(run_charlm("train", folder / "plain.txt", "--steps", 2, "--hidden", 8, "--layers", 1,
                  "--out", model, "--quiet", cwd=folder))
    return model


def test_the_checkpoint_records_labels_and_training_counts(trained):
    with np.load(trained["model"], allow_pickle=False) as arrays:
        config = json.loads(str(arrays["config"]))
        vocab = arrays["vocab"].tolist()
    assert config["labels"] == sorted(ALPHABETS)
    assert config["mode"] == "lines"
    assert sum(config["label_counts"]) == round(TRAIN_LINES * 0.9)    # the training split's lines
    tokens = [f"<label:{n}>" for n in config["labels"]]
    assert [t for t in vocab if t.startswith("<label:")] == tokens
    info = json.loads(ok(run_charlm("info", trained["model"], "--json")).stdout)
    assert [r["label"] for r in info["labels"]] == config["labels"]
    assert [r["count"] for r in info["labels"]] == config["label_counts"]
    assert "mid (" in ok(run_charlm("info", trained["model"])).stdout


def test_held_out_lines_are_classified_without_a_mistake(trained):
    data = json.loads(ok(run_charlm("classify", "--eval", trained["held"], "--json",
                                    "--model", trained["model"])).stdout)
    assert data["accuracy"] == 1.0
    assert data["examples"] == 90 == len(data["results"])
    matrix = np.array(data["confusion"]["matrix"])
    assert data["confusion"]["labels"] == sorted(ALPHABETS)
    assert matrix.sum() == 90 and np.trace(matrix) == 90
    truth = [label for label, _ in labelled_lines(90, 2)]
    majority = data["majority"]
    assert majority["accuracy"] == pytest.approx(truth.count(majority["label"]) / 90)
    for r in data["results"]:
        assert r["label"] == r["true"]
        assert sum(r["posterior"].values()) == pytest.approx(1.0, abs=1e-9)


def test_samples_of_a_label_stay_in_its_alphabet(trained):
    for label, alphabet in ALPHABETS.items():
        samples = json.loads(ok(run_charlm("sample", "--label", label, "--num", 20, "--seed", 3,
                                           "--temperature", SHARP, "--json",
                                           "--model", trained["model"])).stdout)["samples"]
        assert len(samples) == 20 and all(samples)
        assert set("".join(samples)) <= set(alphabet), (label, samples)
        beams = json.loads(ok(run_charlm("sample", "--label", label, "--beam", 3, "--json",
                                         "--model", trained["model"])).stdout)["samples"]
        assert set("".join(beams)) <= set(alphabet), (label, beams)
    stopped = json.loads(ok(run_charlm("sample", "--label", "low", "--stop", "a", "--num", 10,
                                       "--seed", 4, "--temperature", SHARP, "--json",
                                       "--model", trained["model"])).stdout)
    assert all("a" not in s for s in stopped["samples"])
    samples = json.loads(ok(run_charlm("sample", "--label", "<any>", "--num", 30, "--seed", 5,
                                       "--json", "--model", trained["model"])).stdout)["samples"]
    assert set("".join(samples)) <= set("".join(ALPHABETS.values()))


def test_posterior_is_bayes_rule_over_the_scores_given_each_label(trained):
    model, text = trained["model"], "ghikkl"
    posterior = json.loads(ok(run_charlm("classify", text, "--json", "--model", model)).stdout)
    posterior = posterior["results"][0]["posterior"]
    counts = {r["label"]: r["count"] for r in
              json.loads(ok(run_charlm("info", model, "--json")).stdout)["labels"]}
    joint = {}
    for label in ALPHABETS:
        scored = json.loads(ok(run_charlm("score", text, "--label", label, "--json",
                                          "--model", model)).stdout)["results"][0]
        joint[label] = scored["log_prob"] + math.log((counts[label] + 1) /
                                                     (sum(counts.values()) + len(counts)))
    top = max(joint.values())
    total = sum(math.exp(v - top) for v in joint.values())
    for label in ALPHABETS:
        assert posterior[label] == pytest.approx(math.exp(joint[label] - top) / total, rel=1e-4,
                                                 abs=1e-9)
    assert max(posterior, key=posterior.get) == "mid"


def test_classify_a_file_and_the_python_api(trained, tmp_path):
    texts = ["abcfed", "ghijk", "nopqrm", "qq"]
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n\n", encoding="utf-8")
    data = json.loads(ok(run_charlm("classify", "--file", tmp_path / "texts.txt", "--json",
                                    "--model", trained["model"])).stdout)
    assert [r["text"] for r in data["results"]] == texts
    assert [r["label"] for r in data["results"]] == ["low", "mid", "top", "top"]
    assert "accuracy" not in data
    model = charlm.load(str(trained["model"]))
    assert model.labels == sorted(ALPHABETS)
    assert [r.label for r in model.classify(texts)] == ["low", "mid", "top", "top"]
    assert model.classify("abc").label == "low"
    assert set("".join(model.sample(label="top", num=5, seed=1, temperature=float(SHARP)))) <= \
        set(ALPHABETS["top"])
    shown = ok(run_charlm("classify", "abc", "--model", trained["model"])).stdout
    assert "low" in shown and "P(label | text)" in shown


def test_scores_given_a_label_agree_with_the_reference_network(trained_model):
    """log P(text | label) per character against tests/reference.py, whose layer 0 adds the
    label's row of W_x at every step (to its bias); classify's batched columns (one per label),
    validation's helper and the training pass against those scores."""
    from charlm.network.engine import Engine
    from charlm.scoring.classify import score_given
    from charlm.scoring.passes import lines_log_prob
    from charlm.text.labels import LabelledLines, label_rows, labelled_ids
    from reference import ReferenceNetwork
    model, texts = trained_model, ["abcfed", "ghij", "qq", "amz"]
    params = {name: np.array(model.network.params[name], np.float64)
              for name, _ in model.network.params.shapes}
    classified = model.classify(texts)
    for row, label in zip(label_rows(model.vocab, model.labels), model.labels):
        scores = score_given(model, texts, label, per_char=True)
        given = dict(params)
        given["layers.0.b"] = params["layers.0.b"] + params["layers.0.W_x"][row]
        reference = ReferenceNetwork(model.config.cell, given)
        for text, result, c in zip(texts, scores, classified):
            ids = list(model.vocab.encode(text))
            x = np.array([0] + ids, np.int32)[:, None]
            y = ids + [0]
            log_probs = reference.run(x)["log_probs"][:, 0]
            assert [lp for _, lp in result.per_char] == pytest.approx(
                log_probs[np.arange(len(y)), y].tolist(), abs=1e-5)
            assert c.log_likelihood[label] == pytest.approx(result.log_prob, abs=1e-4)
        lines = LabelledLines([model.vocab.encode(t) for t in texts], [row] * len(texts))
        log_prob, tokens = lines_log_prob(Engine(model.network), lines, lines.rows)
        assert log_prob == pytest.approx(sum(r.log_prob for r in scores), abs=1e-4)
        assert tokens == sum(r.num_tokens for r in scores)
        ids = model.vocab.encode(texts[0])
        x = labelled_ids(np.array([0] + list(ids), np.int32)[:, None], [row], len(model.vocab))
        y = np.array(list(ids) + [0], np.int32)[:, None]
        net = model.network
        loss, count, _ = net.loss_and_gradients(x, y, net.zero_state(1), net.params.like())
        assert loss * count == pytest.approx(-scores[0].log_prob, rel=1e-5)


def test_the_report_lists_the_labels_and_its_sampler_offers_them(trained, tmp_path):
    import re
    ok(run_charlm("report", "--model", trained["model"], "-o", "report.html"))
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert re.search(r"<th>labels</th><td>low \([\d,]+\), mid \([\d,]+\), top \([\d,]+\)", page)
    assert 'id="label-choice"' in page and '<select id="label">' in page
    data = re.search(r'<script type="application/json" id="charlm-data">(.*?)</script>', page, re.S)
    assert json.loads(data.group(1))["model"]["labels"] == sorted(ALPHABETS)


def test_novelty_checks_samples_against_the_texts_without_their_labels(trained):
    known = labelled_lines(TRAIN_LINES, 1)[0][1]
    model = charlm.load(str(trained["model"]))
    assert [n.in_corpus for n in model.novelty([known, "abcabcabcabc"])] == [True, False]
    # the training file named as --corpus is read as the labelled corpus it is
    named = model.novelty([known, "abcabcabcabc"], corpus=str(trained["corpus"]))
    assert [n.in_corpus for n in named] == [True, False]
    plain = trained["folder"] / "texts.txt"            # a file of texts is read as it is
    plain.write_text(known + "\n", encoding="utf-8")
    assert [n.in_corpus for n in model.novelty([known], corpus=str(plain))] == [True]
    marked = json.loads(ok(run_charlm("sample", "--label", "low", "--num", 3, "--novelty",
                                      "--json", "--model", trained["model"])).stdout)
    assert len(marked["novelty"]) == 3


def test_the_interactive_chooser_starts_from_the_label(trained_model):
    from charlm.generation.interactive import Chooser
    for label, alphabet in ALPHABETS.items():
        chooser = Chooser(trained_model, seed=1, label=label)
        assert {shown for _, shown, _ in chooser.top(len(alphabet))} == set(alphabet)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 40), st.integers(0, 3))
def test_layer_0_reads_each_id_and_its_label(seed, n, labelled):
    """charlm.network.inputs: gather is W_x[i % V] (+ W_x[i // V] for a label) and scatter is its
    transpose, against plain numpy; ids without a label take the plain gather."""
    from charlm.network.inputs import gather, scatter
    from charlm.text.labels import labelled_ids
    rng = np.random.default_rng(seed)
    V, D = 9, 5
    w = rng.standard_normal((V, D)).astype(np.float32)
    chars = rng.integers(0, 6, (n, 2)).astype(np.int32)
    rows = rng.choice([0, 6, 7, 8], 2) if labelled else np.zeros(2, np.int64)
    ids = labelled_ids(chars, rows, V).reshape(-1)
    out = np.empty((ids.size, D), np.float32)
    gather(w, ids, out)
    label_of = np.tile(rows, n)
    expected = w[chars.reshape(-1)] + np.where(label_of[:, None] > 0, w[label_of], 0.0)
    assert np.allclose(out, expected, atol=1e-6)
    dz = rng.standard_normal((ids.size, D)).astype(np.float32)
    dw = np.zeros_like(w)
    scatter(dw, ids, dz)
    expected = np.zeros((V, D))
    np.add.at(expected, chars.reshape(-1), dz)
    np.add.at(expected, label_of[label_of > 0], dz[label_of > 0])
    assert np.allclose(dw, expected, atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.text(alphabet="abcdefghijklmnopqrxyz é", min_size=1, max_size=12),
                min_size=1, max_size=6))
def test_posteriors_are_a_distribution(trained_model, texts):
    results = trained_model.classify(texts)
    for text, r in zip(texts, results):
        assert r.text == text
        values = np.array(list(r.posterior.values()))
        assert np.all(values >= 0) and values.sum() == pytest.approx(1.0, abs=1e-9)
        assert r.label == max(r.posterior, key=r.posterior.get)


@pytest.fixture(scope="module")
def trained_model(trained):
    return charlm.load(str(trained["model"]))


def test_one_file_per_label(tmp_path):
    rng = np.random.default_rng(0)
    for name, alphabet in (("verse", "abc"), ("prose", "xyz")):
        lines = ["".join(rng.choice(list(alphabet), 5)) for _ in range(40)]
        (tmp_path / f"{name}.txt").write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    ok(run_charlm("train", "--label", "verse=verse.txt", "--label", "prose=prose.txt",
                  "--steps", 3, "--hidden", 8, "--layers", 1, "--out", "files.npz", "--quiet"))
    with np.load(tmp_path / "files.npz", allow_pickle=False) as arrays:
        config = json.loads(str(arrays["config"]))
    assert config["labels"] == ["prose", "verse"] and sum(config["label_counts"]) == 72
    novelty = run_charlm("sample", "--model", "files.npz", "--novelty")
    assert novelty.returncode == 2 and "trained on --label NAME=FILE files" in novelty.stderr
    again = run_charlm("train", "--steps", 5, "--out", "files.npz", "--resume")
    assert again.returncode == 2 and "labelled corpus" in again.stderr
    # the same options resume; in another order (the examples' order) they are named
    ok(run_charlm("train", "--label", "verse=verse.txt", "--label", "prose=prose.txt",
                  "--steps", 5, "--out", "files.npz", "--resume", "--quiet"))
    other = run_charlm("train", "--label", "prose=prose.txt", "--label", "verse=verse.txt",
                       "--steps", 7, "--out", "files.npz", "--resume")
    assert other.returncode == 2 and "--label NAME=FILE files, in the order" in other.stderr


BAD_CORPORA = [
    ("low\tabc\nno tab here\n", "line 2: no tab"),
    ("low\tabc\n\tdef\n", "line 2: the label before the tab is empty"),
    ("low\tabc\nmid\t  \n", "line 2: label 'mid' but no text"),
]


@pytest.mark.parametrize("change", [lambda c: c["labels"].append("zzz"),
                                    lambda c: c.update(label_counts=[1]),
                                    lambda c: c.update(label_counts=[-1] * len(c["labels"])),
                                    lambda c: c.update(labels=None)])
def test_labels_that_do_not_fit_the_vocabulary_are_a_damaged_checkpoint(trained, tmp_path,
                                                                        change):
    """A label without its token, a count per label missing or negative, label counts without
    labels: refused on loading in one line (exit 4), never met later as a traceback or a
    posterior computed from a count broadcast over the labels."""
    with np.load(trained["model"]) as npz:
        arrays = {k: npz[k] for k in npz.files}
    config = json.loads(str(arrays["config"]))
    change(config)
    arrays["config"] = np.array(json.dumps(config))
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    result = run_charlm("classify", "abc", "--model", bad)
    assert result.returncode == 4 and "do not fit its vocabulary" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_score_given_a_label_refuses_dynamic_settings_however_given(trained_model):
    for dynamic in (True, {}, {"lr": 0.001}):
        with pytest.raises(charlm.errors.UsageError, match="label= scores with the trained"):
            trained_model.score("abc", label="low", dynamic=dynamic)


def test_labels_and_paths_that_look_like_markup_are_shown_as_they_are(tmp_path):
    """Label names and model paths are the user's text: the tables of info, classify and
    gradients show them verbatim, never read them as rich markup (a closing tag raised)."""
    folder = tmp_path / "[/x]"            # a folder "[" holding one named "x]"
    folder.mkdir(parents=True)
    lines = [("[/a]" if label == sorted(ALPHABETS)[0] else "[bold]b", text)
             for label, text in labelled_lines(120, 3)]
    corpus = write_tsv(folder / "c.tsv", lines)
    model = folder / "m.npz"
    ok(run_charlm("train", corpus, "--labels", "--hidden", 8, "--steps", 3, "--out", model,
                  "--quiet"))
    for command in (["info", model], ["classify", "abc", "--model", model],
                    ["classify", "--eval", corpus, "--model", model],
                    ["gradients", "abc", "--model", model]):
        shown = ok(run_charlm(*command)).stdout
        assert "[/a]" in shown or "[/x]" in shown, shown
        assert "[bold]b" in shown or command[0] == "gradients", shown


@pytest.mark.parametrize("text, message", BAD_CORPORA)
def test_a_bad_labelled_corpus_is_refused_in_one_line(tmp_path, text, message):
    (tmp_path / "bad.tsv").write_text(text, encoding="utf-8")
    result = run_charlm("train", "bad.tsv", "--labels", "--steps", 1, "--out", "bad.npz")
    assert result.returncode == 3
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bad.npz").exists()


def test_bad_uses_of_labels_are_refused_in_one_line(trained, unlabelled, tmp_path):
    model = trained["model"]
    cases = [
        (["sample", "--label", "poetry", "--model", model], "it knows low, mid, top"),
        (["score", "abc", "--label", "poetry", "--model", model], "no such label"),
        # refused before any model is read: this one does not exist
        (["score", "--file", "x.txt", "--label", "low", "--model", "missing.npz"],
         "--label applies to TEXT arguments"),
        (["sample", "--label", "low", "--model", unlabelled], "trained without labels"),
        (["score", "abc", "--label", "low", "--model", unlabelled], "trained without labels"),
        (["classify", "abc", "--model", unlabelled], "trained without labels"),
        (["classify", "--model", model], "nothing to classify"),
        (["train", "--labels", "--out", "x.npz"], "give the corpus file"),
        (["train", "--label", "a=x.txt", "--out", "x.npz"], "two labels or more"),
        (["train", "--label", "a", "--label", "b=y.txt", "--out", "x.npz"], "NAME=FILE"),
        (["train", trained["corpus"], "--labels", "--mode", "stream", "--out", "x.npz"],
         "lines mode"),
        (["train", trained["corpus"], "--labels", "--bidirectional", "--out", "x.npz"],
         "--bidirectional"),
    ]
    for args, message in cases:
        result = run_charlm(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, args
        assert result.stdout == ""
    (tmp_path / "eval.tsv").write_text("poetry\tabc\n", encoding="utf-8")
    result = run_charlm("classify", "--eval", "eval.tsv", "--model", model)
    assert result.returncode == 2 and "'poetry'" in result.stderr
    assert not (tmp_path / "x.npz").exists()


def test_classify_refuses_eval_beside_other_texts_in_one_line(trained, tmp_path):
    (tmp_path / "plain.txt").write_text("abc\n", encoding="utf-8")
    for others, named in ((["--file", "plain.txt"], "without --file"),
                          (["abc"], "without TEXT arguments"),
                          (["abc", "--file", "plain.txt"], "without --file or TEXT arguments")):
        result = run_charlm("classify", *others, "--eval", trained["held"], "--model",
                            trained["model"])
        assert result.returncode == 2, (others, result.stderr)
        assert "--eval" in result.stderr and named in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""
    result = run_charlm("classify", "abc", "--encoding", "latin-1", "--model", trained["model"])
    assert result.returncode == 2 and "--encoding applies to --file PATH" in result.stderr


@pytest.mark.parametrize("content, as_json", [("", ["--json"]), (" \n\t\n\n", [])])
def test_classify_refuses_an_empty_or_blank_file_as_score_does(trained, tmp_path, content,
                                                               as_json):
    (tmp_path / "empty.txt").write_text(content, encoding="utf-8")
    result = run_charlm("classify", "abc", "--file", "empty.txt", *as_json, "--model",
                        trained["model"])
    assert result.returncode == 3, result.stderr
    assert "empty.txt is empty" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""
    evaluated = run_charlm("classify", "--eval", "empty.txt", "--model", trained["model"])
    assert evaluated.returncode == 3 and "there is nothing to classify" in evaluated.stderr


# ---- a word model of a labelled corpus (--labels --tokens words) ------------------------------

TOPICS = {"food": "apple bread cheese soup rice bean cake milk",
          "sport": "ball goal team run score match race kick",
          "weather": "rain snow wind cloud storm sun fog frost"}


def topic_lines(count, seed):
    """Lines of three to six words of the label's topic; every 50th line ends in a word of its own
    (seen once, so read as <UNK>)."""
    rng = np.random.default_rng(seed)
    names = sorted(TOPICS)
    lines = []
    for k in range(count):
        label = names[rng.integers(len(names))]
        text = " ".join(rng.choice(TOPICS[label].split(), rng.integers(3, 7)))
        lines.append((label, text + (f" once{k}" if k % 50 == 0 else "")))
    return lines


@pytest.fixture(scope="module")
def trained_words(tmp_path_factory):
    """A labelled word model of the topic corpus, and a held-out file of the same kind."""
    folder = tmp_path_factory.mktemp("labelled-words")
    corpus = write_tsv(folder / "train.tsv", topic_lines(1500, 1))
    held = write_tsv(folder / "held.tsv", topic_lines(60, 2))
    model = folder / "words.npz"
    ok(run_charlm("train", corpus, "--labels", "--tokens", "words", "--cell", "gru", "--hidden",
                  32, "--layers", 1, "--dropout", 0, "--steps", 800, "--out", model, "--quiet",
                  cwd=folder))
    return {"folder": folder, "corpus": corpus, "held": held, "model": model}


def test_a_word_model_s_labels_follow_its_words_counted_on_the_texts(trained_words):
    with np.load(trained_words["model"], allow_pickle=False) as arrays:
        config = json.loads(str(arrays["config"]))
        vocab = arrays["vocab"].tolist()
    assert config["tokens"] == "words" and config["mode"] == "lines"
    assert config["labels"] == sorted(TOPICS) and sum(config["label_counts"]) == 1350
    words = {w for topic in TOPICS.values() for w in topic.split()}
    assert set(vocab[2:-3]) == words | {" "}          # no label name, no word seen once
    assert vocab[-3:] == [f"<label:{name}>" for name in sorted(TOPICS)]
    assert config["vocab_size"] == len(words) + 1


def test_samples_of_a_label_hold_its_words(trained_words):
    model = trained_words["model"]
    for label, topic in TOPICS.items():
        samples = json.loads(ok(run_charlm("sample", "--label", label, "--num", 20, "--seed", 3,
                                           "--temperature", SHARP, "--json",
                                           "--model", model)).stdout)["samples"]
        beams = json.loads(ok(run_charlm("sample", "--label", label, "--beam", 3, "--json",
                                         "--model", model)).stdout)["samples"]
        assert len(samples) == 20 and all(samples) and beams
        assert set(" ".join(samples + beams).split()) <= set(topic.split()), (label, samples)


def test_held_out_lines_of_words_are_classified(trained_words):
    data = json.loads(ok(run_charlm("classify", "--eval", trained_words["held"], "--json",
                                    "--model", trained_words["model"])).stdout)
    assert data["examples"] == 60 and data["accuracy"] >= 0.95
    for r in data["results"]:
        assert sum(r["posterior"].values()) == pytest.approx(1.0, abs=1e-9)


def test_a_word_score_given_a_label_agrees_with_the_reference_network(trained_words):
    """score --label in bits per character against tests/reference.py, whose layer 0 adds the
    label's row of W_x at every step (to its bias), with the checkpoint's spelling of each <UNK>
    added; classify's log P(text | label) is the same figure, spellings included."""
    from charlm.text import words
    from charlm.text.vocab import UNK_ID
    from reference import ReferenceNetwork, spelling_log_prob
    model, text = trained_words["model"], "rain snow fog Zorblax wind"
    classified = charlm.load(str(model)).classify(text)
    with np.load(model, allow_pickle=False) as npz:
        vocab = npz["vocab"].tolist()
        config = json.loads(str(npz["config"]))
        params = {name: np.array(npz[name], np.float64) for name in npz.files
                  if name.startswith(("layers.", "out."))}
        spelt = spelling_log_prob(npz, "Zorblax")
    tokens = words.split(text)
    ids = [vocab.index(t) if t in vocab[2:] else UNK_ID for t in tokens]
    assert ids.count(UNK_ID) == 1
    for label in TOPICS:
        result = json.loads(ok(run_charlm("score", text, "--label", label, "--per-char",
                                          "--json", "--model", model)).stdout)["results"][0]
        given = dict(params)
        given["layers.0.b"] = params["layers.0.b"] + params["layers.0.W_x"][
            vocab.index(f"<label:{label}>")]
        x = np.array([0] + ids, np.int32)[:, None]
        y = ids + [0]                                     # lines mode: the closing <EOS>
        log_probs = ReferenceNetwork(config["cell"], given).run(x)["log_probs"][:, 0]
        expected = log_probs[np.arange(len(y)), y] + [spelt if i == UNK_ID else 0.0 for i in y]
        assert [e["log_prob"] for e in result["per_token"]] == pytest.approx(expected.tolist(),
                                                                            abs=1e-5)
        assert result["bits_per_char"] == pytest.approx(
            -expected.sum() / math.log(2) / (len(text) + 1), rel=1e-6)
        assert result["spelling_nats"] == pytest.approx(-spelt, rel=1e-9)
        assert classified.log_likelihood[label] == pytest.approx(result["log_prob"], abs=1e-4)
    assert classified.label == "weather"


def test_a_text_never_reads_as_a_label_token(trained_words):
    from charlm.text.vocab import is_label
    from charlm.text.words import Spelling, WordVocab
    vocab = charlm.load(str(trained_words["model"])).vocab
    labels = [i for i, t in enumerate(vocab.tokens) if is_label(t)]
    text = "".join(vocab.tokens[i] for i in labels) + " <label:rain> rain"
    assert not set(vocab.encode(text).tolist()) & set(labels)
    assert "<label:food>" not in vocab.unknown(text)       # its pieces are, it is not
    with pytest.raises(ValueError, match="as words.split cuts them"):
        WordVocab(["<EOS>", "<UNK>", "rain snow"], Spelling(["a"], [-1.0, -9.0], 0.5))


def test_a_labelled_word_model_resumes(trained_words, tmp_path):
    import shutil
    shutil.copy(trained_words["model"], "words.npz")
    again = json.loads(ok(run_charlm("train", trained_words["corpus"], "--labels", "--out",
                                     "words.npz", "--resume", "--steps", 810, "--json")).stdout)
    assert again["steps"] == 810 and again["tokens"] == "words"
    resumed, first = (charlm.load(str(path)) for path in ("words.npz", trained_words["model"]))
    assert resumed.vocab.tokens == first.vocab.tokens
    assert resumed.config.label_counts == first.config.label_counts


def test_a_word_vocabulary_too_large_for_labelled_ids_is_refused_in_one_line(tmp_path):
    """A labelled input id is token + V * label token, below V ** 2, held in int32."""
    lines = [("ab"[k % 2], f"w{k} w{k}x") for k in range(23_200)]     # 46,400 distinct words
    write_tsv(tmp_path / "big.tsv", lines)
    result = run_charlm("train", "big.tsv", "--labels", "--tokens", "words", "--min-count", 1,
                        "--vocab-size", 50_000, "--val-frac", 0, "--steps", 1, "--out", "big.npz")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "at most 46,340 tokens; this corpus has 46,405 (--vocab-size" in result.stderr
    assert not (tmp_path / "big.npz").exists()
