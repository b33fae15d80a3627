"""Corpora and batches: reading text files, the split, the layouts of both modes, and what
reaches the model."""
import json

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings, strategies as st

from charlm.cli import main
from charlm.text.corpus import (LineBatches, StreamBatches, fit_batch_shape, pad_lines, read_corpus,
    split_line_indices, split_stream_ids)
from charlm.errors import CorpusError, UsageError
from charlm.text.textfile import TextFile, read_text
from charlm.text.vocab import EOS_ID, UNK_ID, Vocab

from test_score import make_model, save_model


# ---- reading text files --------------------------------------------------------------------------

def read_in_chunks(path, chunk_bytes, encoding="utf-8"):
    """The text of the file read in chunks of chunk_bytes, none of them empty."""
    chunks = list(TextFile(path, encoding, chunk_bytes=chunk_bytes).chunks())
    assert all(chunks)
    return "".join(chunks)


@pytest.mark.parametrize("encoding", ["utf_16", "UTF-16", "utf-16-le", "utf_32"])
def test_utf16_and_utf32_files_are_text_for_training_and_scoring(tmp_path, encoding):
    """Their NUL bytes are text whatever the spelling of the encoding's name."""
    path = tmp_path / "names.txt"
    path.write_bytes("Anna\r\nBé\r\n".encode(encoding))
    assert read_corpus(path, encoding).text == "Anna\nBé\n"
    model = save_model(tmp_path / "m.npz", make_model(text="Anna\nBé\n"))
    (tmp_path / "utf8.txt").write_text("Anna\nBé\n", encoding="utf-8")
    scores = [CliRunner().invoke(main, ["score", "--model", model, "--json", "--file", str(f),
                                        "--encoding", e], catch_exceptions=False)
              for f, e in ((path, encoding), (tmp_path / "utf8.txt", "utf-8"))]
    assert scores[0].exit_code == 0, scores[0].stderr
    results = [json.loads(s.stdout)["results"][0] for s in scores]
    assert results[0]["num_tokens"] == 8 and results[0]["unknown"] == []
    assert results[0]["log_prob"] == results[1]["log_prob"]


@pytest.mark.parametrize("chunk_bytes", [1 << 20, 2, 3, 4, 11])
def test_invalid_bytes_are_reported_at_their_offset_in_the_file(tmp_path, chunk_bytes):
    """In the first chunk or a later one, alone or ending a chunk as the start of a character."""
    path = tmp_path / "bad.txt"
    path.write_bytes("Anna é\n".encode() + b"Bo\xc3(b\n")          # \xc3 starts at offset 10
    with pytest.raises(CorpusError) as error:
        read_in_chunks(path, chunk_bytes)
    assert str(error.value) == (f"{path} is not valid utf-8: byte 0xc3 at offset 10 (invalid "
                                "continuation byte); read another encoding with e.g. --encoding "
                                "latin-1")
    assert read_in_chunks(path, chunk_bytes, "latin-1") == "Anna Ã©\nBoÃ(b\n"
    path.write_bytes("caf\u00e9 au lait\n".encode("latin-1"))
    with pytest.raises(CorpusError, match=r"byte 0xe9 at offset 3 \(invalid continuation byte\)"):
        read_in_chunks(path, chunk_bytes)
    path.write_bytes("ab中".encode()[:-1])                        # cut short at the end of the file
    with pytest.raises(CorpusError, match=r"byte 0xe4 at offset 2 \(unexpected end of data\)"):
        read_in_chunks(path, chunk_bytes)


def test_characters_split_across_chunks_decode_whole(tmp_path):
    text = "é中😀 Zoë: ∑ 𝄞\n" * 3
    path = tmp_path / "wide.txt"
    path.write_text(text, encoding="utf-8")
    for chunk_bytes in range(1, 12):
        assert read_in_chunks(path, chunk_bytes) == text, chunk_bytes
    path.write_text(text, encoding="utf-16")
    for chunk_bytes in range(1, 6):
        assert read_in_chunks(path, chunk_bytes, "utf-16") == text, chunk_bytes


def test_a_leading_byte_order_mark_is_dropped_once(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbfAnna\r\nBo\xef\xbb\xbf\n")
    for chunk_bytes in (1, 2, 3, 1 << 20):
        assert read_in_chunks(path, chunk_bytes) == "Anna\nBo\ufeff\n"
        assert read_in_chunks(path, chunk_bytes, "utf-8-sig") == "Anna\nBo\ufeff\n"
    path.write_bytes(b"\xef\xbb\xbf\xef\xbb\xbfAnna")
    assert read_text(path) == "\ufeffAnna"


def test_crlf_and_cr_become_lf_wherever_the_chunks_end(tmp_path):
    path = tmp_path / "crlf.txt"
    path.write_bytes(b"a\r\nb\rc\r\r\nd\n\re\r")
    for chunk_bytes in range(1, 16):
        assert read_in_chunks(path, chunk_bytes) == "a\nb\nc\n\nd\n\ne\n", chunk_bytes


def test_size_and_bytes_read_follow_the_reading(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes(b"0123456789" * 10)
    file = TextFile(path, chunk_bytes=30)
    assert file.size == 100 and file.bytes_read == 0
    chunks = file.chunks()
    next(chunks)
    assert file.bytes_read == 30
    assert "".join(chunks) and file.bytes_read == 100


def test_unusable_files_and_encodings(tmp_path):
    with pytest.raises(CorpusError, match="no such file"):
        TextFile(tmp_path / "missing.txt")
    with pytest.raises(CorpusError, match="is a folder"):
        TextFile(tmp_path)
    path = tmp_path / "t.txt"
    path.write_bytes(b"text, then a NUL byte: \0")
    with pytest.raises(CorpusError, match="binary file \\(NUL byte at offset 23\\)"):
        read_in_chunks(path, 4)
    with pytest.raises(UsageError, match="--encoding: unknown encoding 'klingon'"):
        TextFile(path, "klingon")
    with pytest.raises(UsageError, match="'base64' is not a text encoding"):
        TextFile(path, "base64")
    path.write_text(" \n\t\n")
    with pytest.raises(CorpusError, match="is empty: there is nothing to learn from"):
        read_corpus(path)


# characters drawn one by one, the interesting ones often (st.text rarely draws a chosen few)
SOME_TEXT = st.lists(st.one_of(st.sampled_from(["\r", "\n", "\ufeff", "é", "中", "😀"]),
                               st.characters(codec="utf-8", exclude_characters="\0"))).map("".join)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=SOME_TEXT, chunk_bytes=st.integers(1, 9))
def test_any_text_reads_back_in_any_chunks(tmp_path, text, chunk_bytes):
    """Decoding in chunks changes nothing but the newlines and a leading BOM."""
    path = tmp_path / "t.txt"                  # rewritten by every example
    path.write_bytes(text.encode("utf-8"))
    expected = text[1:] if text.startswith("\ufeff") else text
    assert read_in_chunks(path, chunk_bytes) == expected.replace("\r\n", "\n").replace("\r", "\n")


# ---- batches -------------------------------------------------------------------------------------

def test_stream_split_matches_nanogpt_on_tiny_shakespeare_sizes():
    ids = np.arange(1_115_394, dtype=np.int32) % 60 + 2
    train, val = split_stream_ids(np.concatenate([[EOS_ID], ids]).astype(np.int32), 0.1)
    assert len(train) - 1 == 1_003_854 and len(val) == 111_540     # predicted tokens
    assert train[0] == EOS_ID
    assert np.array_equal(np.concatenate([train[1:], val]), ids)


def test_stream_batches_cover_each_stream_in_order_with_next_character_targets():
    ids = np.arange(1, 1002, dtype=np.int32)
    batches = StreamBatches(ids, batch_size=4, seq_len=10, seed=0)
    seen = []
    for k in range(len(batches)):
        x, y = batches.batch(epoch=0, index=k)
        assert x.shape == (10, 4)
        assert np.array_equal(y[1:], x[1:] + 1) and np.array_equal(y[0], x[0] + 1) == (k > 0)
        seen.append(y)
    assert np.all(seen[0][0] - 1 == np.arange(4) * batches.stream_len + batches.offset(0) + 1)
    assert np.all(batches.batch(0, 0)[0][0] == EOS_ID)     # each stream starts like a sample
    y = np.concatenate(seen)                               # (steps, streams)
    assert np.all(np.diff(y, axis=0) == 1)                 # each stream reads on without a gap


def test_stream_offsets_change_with_the_epoch_and_not_between_calls():
    batches = StreamBatches(np.arange(5000, dtype=np.int32), 5, 50, seed=3)
    offsets = [batches.offset(e) for e in range(8)]
    assert offsets == [batches.offset(e) for e in range(8)]
    assert len(set(offsets)) > 1 and all(0 <= o < 50 for o in offsets)


def test_cold_starts_zero_a_seeded_share_of_the_carried_streams():
    state = np.ones((2, 2, 40, 3), np.float32)             # (layers, states, streams, units)
    ids = np.arange(20_000, dtype=np.int32)
    assert StreamBatches(ids, 40, 10, seed=0).restarted(state, 0, 5) is state
    batches = StreamBatches(ids, 40, 10, seed=0, cold_starts=0.25)
    restarted = [batches.restarted(state, epoch=0, index=k) for k in range(1, 41)]
    cold = np.array([r[0, 0, :, 0] == 0 for r in restarted])          # (batches, streams)
    for r, c in zip(restarted, cold):
        assert np.all(r[:, :, c] == 0) and np.all(r[:, :, ~c] == 1)    # whole streams, all layers
    assert np.all(state == 1)                                          # the carried state is kept
    assert 0.2 < cold.mean() < 0.3 and len({c.tobytes() for c in cold}) > 30
    again = StreamBatches(ids, 40, 10, seed=0, cold_starts=0.25).restarted(state, 0, 7)
    assert np.array_equal(again, restarted[6])                          # drawn from seed and index
    other = StreamBatches(ids, 40, 10, seed=1, cold_starts=0.25).restarted(state, 0, 7)
    assert not np.array_equal(other, again)
    assert not np.array_equal(batches.restarted(state, epoch=1, index=7), again)   # and epoch
    assert np.all(StreamBatches(ids, 40, 10, 0, cold_starts=1.0).restarted(state, 3, 2) == 0)


def test_lines_are_padded_examples_with_eos_at_both_ends():
    chunks = pad_lines([np.array([5, 6, 7]), np.array([8])], seq_len=3)
    x = np.concatenate([c[0] for c in chunks])
    y = np.concatenate([c[1] for c in chunks])
    assert [c[0].shape[0] for c in chunks] == [3, 1]
    assert x[:, 0].tolist() == [EOS_ID, 5, 6, 7] and y[:, 0].tolist() == [5, 6, 7, EOS_ID]
    assert x[:2, 1].tolist() == [EOS_ID, 8] and y[:, 1].tolist() == [8, EOS_ID, -1, -1]


def test_line_batches_visit_every_line_once_per_epoch():
    lines = [np.array([i + 2]) for i in range(23)]
    batches = LineBatches(lines, batch_size=5, seq_len=100, seed=1)
    firsts = [int(t) for k in range(len(batches)) for t in batches.batch(0, k)[0][1][0]]
    assert sorted(firsts) == list(range(2, 25))
    assert firsts != [int(t) for k in range(len(batches)) for t in batches.batch(1, k)[0][1][0]]


def test_line_split_is_seeded_and_disjoint():
    train, val = split_line_indices(100, 0.1, seed=4)
    assert len(val) == 10 and not set(train) & set(val) and len(train) + len(val) == 100
    assert all(np.array_equal(a, b) for a, b in zip(split_line_indices(100, 0.1, 4), (train, val)))
    assert not np.array_equal(split_line_indices(100, 0.1, 5)[1], val)
    assert np.array_equal(split_line_indices(100, 0.0, 4)[0], np.arange(100))
    assert split_line_indices(2, 0.01, 4)[1].size == 1       # one at least, not all


@pytest.mark.parametrize("chars,B,T", [(30, 50, 100), (500, 50, 100), (3, 50, 100)])
def test_short_corpora_shrink_the_batch_to_fit(chars, B, T):
    b, t, notice = fit_batch_shape("stream", chars + 1, B, T)
    assert notice and b * (t + 1) <= chars and b >= 1 and t >= 1
    batches = StreamBatches(np.arange(chars + 1, dtype=np.int32), b, t, seed=0)
    x, y = batches.batch(0, 0)
    assert x.size > 0 and y.max() <= chars


def test_vocab_encodes_unknown_characters_as_unk_and_keeps_wide_ones():
    vocab = Vocab.from_text("ab\U0001F600\n")
    ids = vocab.encode("ab\U0001F600z\n")
    assert ids[3] == UNK_ID and vocab.decode(ids[:3]) == "ab\U0001F600"
    assert vocab.unknown("abcz") == ["c", "z"]
    rare = Vocab.from_text("aaab\n", min_count=2)
    assert "b" not in rare.tokens and "\n" in rare.tokens
    lines = Vocab.from_text("aaab\nab\n", mode="lines")        # a newline separates the lines
    assert lines.tokens == ["<EOS>", "<UNK>", "a", "b"]
