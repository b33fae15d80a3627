"""Prepared corpora (charlm.text.prepared, `charlm prepare`): the ids, vocabulary, line index and mode
of the in-memory path, wherever the chunks fall; staleness; training from the memory map equals
training from memory, bit for bit."""
import json
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charlm.text import prepared
from charlm.text.corpus import read_corpus
from charlm.errors import CorpusError
from charlm.training.reporter import Reporter
from charlm.training.trainer import new_trainer
from conftest import run_charlm


def assert_same_as_in_memory(path, chunk_bytes, encoding="utf-8"):
    """Prepare path in chunks of chunk_bytes and compare everything train reads with the text
    read into memory."""
    corpus, built = prepared.prepare_corpus(str(path), encoding, mode="lines", force=True,
                                     chunk_bytes=chunk_bytes)
    assert built
    memory = read_corpus(str(path), encoding)
    assert corpus.chars == memory.chars
    assert corpus.fingerprint() == memory.fingerprint()
    assert corpus.detect_mode() == memory.detect_mode()
    for min_count in (1, 2):
        for mode in ("stream", "lines"):
            vocab = memory.vocab(min_count, mode)
            assert corpus.vocab(min_count, mode).tokens == vocab.tokens
            assert np.array_equal(np.asarray(corpus.ids(vocab)), memory.ids(vocab))
    assert np.array_equal(np.asarray(corpus.line_spans()), memory.line_spans())
    return corpus


TEXTS = ["Anna\nBob\n\n\n", "a\n  \nb", "héllo wörld 😀\r\nzz\r", "\ufeffx", "\n\na b\n c\n\n",
         "  \n\t\n x", "Ωmega\u2028line\u3000end\n"]


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("chunk_bytes", [1, 2, 3, 1 << 20])
def test_prepared_ids_are_the_in_memory_ids(tmp_path, text, chunk_bytes):
    path = tmp_path / "corpus.txt"
    path.write_bytes(text.encode("utf-8"))
    assert_same_as_in_memory(path, chunk_bytes)


@settings(max_examples=40, deadline=None)
@given(text=st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\0"),
                    min_size=1, max_size=60).filter(lambda t: t.strip()),
       chunk_bytes=st.integers(1, 9))
def test_any_text_prepares_to_the_in_memory_ids(tmp_path_factory, text, chunk_bytes):
    path = tmp_path_factory.mktemp("any") / "corpus.txt"
    path.write_bytes(text.encode("utf-8"))
    assert_same_as_in_memory(path, chunk_bytes)


def test_other_encodings_prepare_as_they_read(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("Bé\r\nçà\n".encode("latin-1"))
    corpus = assert_same_as_in_memory(path, 2, encoding="latin-1")
    assert corpus.meta["source"]["encoding"] == "iso8859-1"


@pytest.mark.parametrize("distinct,dtype", [(253, "uint8"), (254, "uint16"), (70_000, "uint32")])
def test_ids_take_the_narrowest_type_and_widen_as_characters_appear(tmp_path, distinct, dtype):
    # <EOS>, <UNK>, "\n" and `distinct` characters; the first 200 come early, the rest late
    chars = [chr(0x10000 + k) for k in range(distinct)]     # no surrogates among them
    path = tmp_path / "wide.txt"
    path.write_text("".join(chars[:200]) * 3 + "\n" + "".join(chars[200:]) + "\n",
                    encoding="utf-8")
    corpus = assert_same_as_in_memory(path, 301)
    assert corpus.meta["dtype"] == dtype
    assert len(corpus.vocab()) == distinct + 3      # and "\n"


@pytest.mark.parametrize("chunk_bytes", [2, 5, 1 << 20])
def test_invalid_utf8_names_its_byte_offset(tmp_path, chunk_bytes):
    path = tmp_path / "bad.txt"
    path.write_bytes("héllo\n".encode("utf-8") + b"ab\xffcd")
    with pytest.raises(CorpusError, match=r"byte 0xff at offset 9\b"):
        prepared.prepare_corpus(str(path), chunk_bytes=chunk_bytes)
    assert prepared.find(str(path)) == (None, None)


def test_a_text_of_white_space_is_refused(tmp_path):
    path = tmp_path / "blank.txt"
    path.write_text(" \n\t\n")
    with pytest.raises(CorpusError, match="empty"):
        prepared.prepare_corpus(str(path))


def test_a_changed_corpus_is_stale_and_prepared_again(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("one\ntwo\n")
    first, built = prepared.prepare_corpus(str(path))
    assert built and prepared.find(str(path))[0].meta == first.meta
    again, built = prepared.prepare_corpus(str(path))
    assert not built and again.folder == first.folder
    path.write_text("one\ntwo\nthree\n")
    assert prepared.find(str(path)) == (None, "it changed since it was prepared")
    assert prepared.find(str(path), "latin-1") == (None, "it changed since it was prepared")
    rebuilt, built = prepared.prepare_corpus(str(path))
    assert built and rebuilt.chars == len("one\ntwo\nthree\n")
    assert prepared.find(str(path), "latin-1") == (None, "it was prepared read as utf-8")
    os.utime(path, ns=(1, 1))               # the same size, another modification time
    assert prepared.find(str(path))[1] == "it changed since it was prepared"


def test_a_copy_that_another_encoding_cannot_read_stays_whole(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("café au lait\n".encode("latin-1") * 20)
    first, _ = prepared.prepare_corpus(str(path), encoding="latin-1")
    files = sorted(os.listdir(first.folder))
    with pytest.raises(CorpusError, match="not valid utf-8"):
        prepared.prepare_corpus(str(path))
    assert sorted(os.listdir(first.folder)) == files
    assert prepared.find(str(path), "latin-1")[0].meta == first.meta


@pytest.mark.parametrize("damage", ["missing", "empty"])
def test_a_prepared_file_gone_or_emptied_is_named_with_the_fix(tmp_path, damage):
    path = tmp_path / "c.txt"
    path.write_text("one two\nthree\n")
    prepared.prepare_corpus(str(path))
    corpus, _ = prepared.find(str(path))
    corpus.word_ids()
    for name in ("ids.bin", "words.bin"):
        target = os.path.join(corpus.folder, name)
        os.remove(target) if damage == "missing" else open(target, "wb").close()
    corpus, _ = prepared.find(str(path))
    with pytest.raises(CorpusError, match="does not hold the ids .* --force"):
        corpus.mapped_ids()
    with pytest.raises(CorpusError, match="does not hold the word tokens .* --force"):
        corpus.word_ids()


def test_the_line_index_is_built_when_a_run_first_needs_it(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("Anna\n\nBob\n  \nCarla")
    corpus, _ = prepared.prepare_corpus(str(path), mode="stream")
    assert corpus.meta["line_index"] is None
    assert np.array_equal(np.asarray(corpus.line_spans()), read_corpus(str(path)).line_spans())
    assert prepared.find(str(path))[0].meta["line_index"] == 3


def test_preparing_again_in_lines_mode_indexes_a_copy_prepared_as_a_stream(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("Anna\n\nBob\n  \nCarla")
    prepared.prepare_corpus(str(path), mode="stream")
    corpus, built = prepared.prepare_corpus(str(path), mode="lines")
    assert not built and corpus.meta["line_index"] == 3
    assert os.path.exists(os.path.join(corpus.folder, "lines.bin"))


def test_an_unwritable_place_beside_the_corpus_falls_back_to_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = tmp_path / "c.txt"
    path.write_text("abc\n")
    (tmp_path / "c.txt.charlm").write_text("a file where the folder would go")
    corpus, _ = prepared.prepare_corpus(str(path))
    assert corpus.folder.startswith(str(tmp_path / "cache" / "charlm" / "prepared"))
    assert prepared.find(str(path))[0].folder == corpus.folder


def test_the_command_prints_json_and_reuses_a_current_copy(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("Anna\nBob\nCarla\n")
    first = run_charlm("prepare", path, "--json")
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    # the vocabulary a lines-mode model trains with: <EOS> stands for the newline
    assert report["tokens"] == 15 and report["vocab_size"] == 2 + len(set("AnnaBobCarla"))
    assert report["built"] and report["mode"] == "lines" and report["lines"] == 3
    assert np.fromfile(report["path"], np.uint8).size == 16 and report["seconds"] >= 0
    second = json.loads(run_charlm("prepare", path, "--json").stdout)
    assert not second["built"] and second["path"] == report["path"]
    missing = run_charlm("prepare", tmp_path / "nothing.txt")
    assert missing.returncode == 3 and "no such file" in missing.stderr


# ---- training from the map -------------------------------------------------------------------------

def train(corpus, out, **options):
    trainer = new_trainer(str(corpus), str(out), hidden_size=16, batch_size=6, seq_len=12,
                               steps=8, eval_every=4, dropout=0.3, seed=5, **options)
    trainer.run()
    return trainer


def checkpoint_arrays(path):
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files if k != "state.json"}
        state = json.loads(str(f["state.json"]))
    history = [(r["step"], r["train_loss"], r["val_loss"]) for r in state["history"]]
    return arrays, history


def assert_same_checkpoints(one, other):
    """The two checkpoints hold the same arrays and the same two validations."""
    arrays, history = checkpoint_arrays(one)
    other_arrays, other_history = checkpoint_arrays(other)
    assert arrays.keys() == other_arrays.keys()
    for name, array in arrays.items():
        assert np.array_equal(array, other_arrays[name]), name
    assert len(history) == 2 and history == other_history


@pytest.mark.parametrize("mode,min_count", [("stream", 1), ("lines", 1), ("stream", 3)])
def test_training_from_the_map_equals_training_from_memory(tmp_path, prose_file, names_file,
                                                            mode, min_count):
    corpus = prose_file if mode == "stream" else names_file
    in_memory = train(corpus, tmp_path / "memory.npz", mode=mode, min_count=min_count)
    assert isinstance(in_memory.dataset.train.ids if mode == "stream" else
                      in_memory.dataset.train.lines.ids, np.ndarray)
    prepared.prepare_corpus(str(corpus), mode=mode)
    mapped = train(corpus, tmp_path / "mapped.npz", mode=mode, min_count=min_count)
    ids = mapped.dataset.train.ids if mode == "stream" else mapped.dataset.train.lines.ids
    assert isinstance(ids, prepared.TokenIds)
    assert_same_checkpoints(tmp_path / "memory.npz", tmp_path / "mapped.npz")


def test_a_run_from_memory_resumes_from_the_map(tmp_path, prose_file):
    train(prose_file, tmp_path / "m.npz")
    prepared.prepare_corpus(str(prose_file))
    resumed = new_trainer(str(prose_file), str(tmp_path / "m.npz"), resume=True, steps=12)
    resumed.run()
    assert resumed.run_state.step == 12


class Notices(Reporter):
    def __init__(self):
        self.notices, self.progress = [], []

    def notice(self, message):
        self.notices.append(message)

    def preparing(self, done, total):
        self.progress.append((done, total))


def test_train_prepares_a_large_corpus_by_itself(tmp_path, prose_file, monkeypatch):
    monkeypatch.setattr(prepared, "LARGE_BYTES", 1000)
    reporter = Notices()
    trainer = new_trainer(str(prose_file), str(tmp_path / "m.npz"), steps=1, hidden_size=8,
                               reporter=reporter)
    assert isinstance(trainer.dataset.train.ids, prepared.TokenIds)
    assert any(n.startswith(f"preparing {prose_file}") for n in reporter.notices)
    size = os.path.getsize(prose_file)
    assert reporter.progress[-1] == (size, size)
    trainer.release()           # a prepared run holds the lock on --out until it runs or lets go
    again = Notices()
    new_trainer(str(prose_file), str(tmp_path / "m.npz"), force=True, steps=1, hidden_size=8,
                     reporter=again)
    assert not any(n.startswith("preparing") for n in again.notices) and not again.progress


@pytest.mark.parametrize("mode", ["stream", "lines"])
def test_validation_reads_at_most_val_max_chars(tmp_path, prose_file, names_file, mode):
    corpus = prose_file if mode == "stream" else names_file
    reporter = Notices()
    trainer = new_trainer(str(corpus), str(tmp_path / "m.npz"), mode=mode, val_frac=0.5,
                               val_max_chars=20, steps=1, hidden_size=8, reporter=reporter)
    assert 0 < trainer.dataset.val_tokens <= 20
    assert any("--val-max-chars" in n for n in reporter.notices)


# ---- word tokens (--tokens words) ----------------------------------------------------------------

WORD_TEXTS = TEXTS + ["don't well-known o’er\n\n  'tis b--c x_y\n", "a-\nb' c’ d\r\ne\n\n\n"]


@pytest.mark.parametrize("text", WORD_TEXTS)
@pytest.mark.parametrize("chunk_bytes", [1, 2, 3, 1 << 20])
def test_prepared_word_numbers_are_the_in_memory_ones(tmp_path, monkeypatch, text, chunk_bytes):
    from charlm.text.wordcorpus import WordCorpus
    monkeypatch.setattr(prepared, "WORD_CHUNK_BYTES", chunk_bytes)
    path = tmp_path / "corpus.txt"
    path.write_bytes(text.encode("utf-8"))
    corpus, _ = prepared.prepare_corpus(str(path))
    mapped, memory = WordCorpus(corpus), WordCorpus(read_corpus(str(path)))
    assert mapped.types == memory.types
    assert np.array_equal(mapped.numbers, memory.numbers)
    assert np.array_equal(np.asarray(mapped.line_spans()), memory.line_spans())
    assert prepared.find(str(path))[0].meta["words"]["line_index"] == len(memory.line_spans())


def write_words(path):
    """Lines of words from a small set, and a rare word in every fifth line (so the held-out part
    holds <UNK>s, whose spelling validation pays for)."""
    rng = np.random.default_rng(5)
    common = ["the", "cat", "sat", "don't", "well-known", "o’er", ",", "."]
    lines = [" ".join(rng.choice(common, 1 + k % 7)) + (f" rare{k}" if k % 5 == 0 else "")
             for k in range(200)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def train_json(*args):
    done = run_charlm("train", *args, "--tokens", "words", "--hidden", 16, "--batch-size", 6,
                      "--seq-len", 12, "--eval-every", 4, "--dropout", 0.3, "--seed", 5, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("mode", ["stream", "lines"])
def test_a_word_model_trains_from_the_prepared_copy_as_from_memory(tmp_path, mode):
    corpus = write_words(tmp_path / "words.txt")
    memory = train_json(corpus, "--mode", mode, "--steps", 8, "--out", "memory.npz")
    report = json.loads(run_charlm("prepare", corpus, "--tokens", "words", "--mode", mode,
                                   "--json").stdout)
    # 8 common tokens, " ", "\n" and 40 rare words; the vocabulary waits for the training part
    assert report["built"] and report["distinct_tokens"] == 50 and report["vocab_size"] is None
    assert np.fromfile(report["path"], np.uint8).size == report["tokens"] + 1
    assert (report["lines"] == 200) == (mode == "lines")
    again = json.loads(run_charlm("prepare", corpus, "--tokens", "words", "--json").stdout)
    assert not again["built"] and again["path"] == report["path"]
    mapped = train_json(corpus, "--mode", mode, "--steps", 8, "--out", "mapped.npz")
    # the same vocabulary, weights and validation figures (bits per character, <UNK>s spelt out)
    assert_same_checkpoints(tmp_path / "memory.npz", tmp_path / "mapped.npz")
    assert memory["best_val_bpc"] == mapped["best_val_bpc"]
    # a run from memory resumes from the map, and its checkpoint scores
    resumed = train_json(corpus, "--out", "memory.npz", "--resume", "--steps", 10)
    assert resumed["steps"] == 10
    score = run_charlm("score", "--model", "memory.npz", "the cat sat on a zebra", "--json")
    assert json.loads(score.stdout)["results"][0]["unknown"] == ["on", "a", "zebra"]


def test_held_out_unknown_words_pay_for_their_spelling_from_either_path(tmp_path, monkeypatch):
    corpus = write_words(tmp_path / "words.txt")
    options = dict(tokens="words", steps=1, hidden_size=8, mode="stream", val_frac=0.2)
    memory = new_trainer(str(corpus), str(tmp_path / "a.npz"), **options)
    memory.release()
    monkeypatch.setattr(prepared, "LARGE_BYTES", 1000)       # too large for memory: prepared
    reporter = Notices()
    mapped = new_trainer(str(corpus), str(tmp_path / "b.npz"), reporter=reporter, **options)
    mapped.release()
    assert isinstance(mapped.dataset.train.ids, prepared.TokenIds)
    assert any(n.startswith(f"preparing {corpus}") for n in reporter.notices)
    assert any(n.startswith(f"cutting {corpus} into words once") for n in reporter.notices)
    assert memory.dataset.val_unk_nats > 0
    for figure in ("val_chars", "val_tokens", "val_unk_nats", "chars_per_token"):
        assert getattr(memory.dataset, figure) == getattr(mapped.dataset, figure), figure
    assert memory.dataset.vocab.tokens == mapped.dataset.vocab.tokens
    assert memory.evaluate() == mapped.evaluate()
    again = Notices()
    new_trainer(str(corpus), str(tmp_path / "c.npz"), reporter=again, **options).release()
    assert not any(n.startswith(("preparing", "cutting")) for n in again.notices)


def test_a_corpus_changed_since_it_was_prepared_is_not_cut_into_words(tmp_path):
    from charlm.text.wordcorpus import WordCorpus
    path = tmp_path / "c.txt"
    path.write_text("one two\n")
    corpus, _ = prepared.prepare_corpus(str(path))
    path.write_text("one two three\n")
    with pytest.raises(CorpusError, match="changed since it was prepared"):
        WordCorpus(corpus)
    assert not corpus.has_words and not (tmp_path / "c.txt.charlm" / "words.bin.tmp").exists()
