"""Corpora and batches: the split, the layouts of both modes, and what reaches the model."""
import numpy as np
import pytest

from charlm.data import LineBatches, StreamBatches, fit_batch_shape, pad_lines, split_lines, split_stream
from charlm.vocab import EOS_ID, UNK_ID, Vocab


def test_stream_split_matches_nanogpt_on_tiny_shakespeare_sizes():
    ids = np.arange(1_115_394, dtype=np.int32) % 60 + 2
    train, val = split_stream(ids, 0.1)
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
    text = "\n".join(f"name{i}" for i in range(100))
    train, val = split_lines(text, 0.1, seed=4)
    assert len(val) == 10 and not set(train) & set(val)
    assert split_lines(text, 0.1, seed=4) == (train, val)
    assert split_lines(text, 0.1, seed=5)[1] != val
    assert split_lines(text, 0.0, seed=4) == (text.split("\n"), [])


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
