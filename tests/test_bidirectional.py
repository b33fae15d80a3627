"""The bidirectional (cloze) network: its passes against the reference network, its gradient,
what it learns that a left-to-right model cannot, its validation, checkpoints and resume, and the
commands that refuse it."""
import json

import numpy as np
import pytest
from conftest import run_charlm
from reference import cloze_log_probs
from test_gradients import numerical_gradient, relative_error

import charlm
from charlm.network import bidirectional, engine as forward, stack as model
from charlm.store import checkpoint
from charlm.network.bidirectional import BidirectionalNetwork, Cloze, cloze_targets, reversal
from charlm.config import Config
from charlm.text.corpus import pad_lines
from charlm.errors import CheckpointError
from charlm.network.stack import Dropout, FlatArrays, init_parameters
from charlm.network.shapes import bidirectional_shapes
from charlm.training.trainer import new_trainer
from charlm.text.vocab import EOS_ID, Vocab

V, H, L = 7, 5, 2


def random_network(cell, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    params = FlatArrays(bidirectional_shapes(cell, V, H, L), dtype=dtype)
    init_parameters(params, cell, rng)
    params.flat += (0.1 * rng.standard_normal(params.flat.size)).astype(dtype)   # biases too
    return BidirectionalNetwork(cell, V, H, L, params)


def random_lines(rng, lengths):
    return [rng.integers(2, V, n).astype(np.int32) for n in lengths]


def use_cores(monkeypatch, n):
    monkeypatch.setenv("CHARLM_THREADS", str(n))     # network.parallel.cores() reads it


def test_reversal_reads_each_column_backwards_from_its_last_target():
    y = np.array([[5, 3, -1], [6, -1, -1], [4, -1, -1]], np.int32)   # 3, 1 and 0 targets
    xb, order = reversal(y)
    np.testing.assert_array_equal(xb[:, 0], [EOS_ID, 4, 6])
    np.testing.assert_array_equal(xb[:, 1], [EOS_ID, EOS_ID, EOS_ID])
    np.testing.assert_array_equal(order[:, 0], [2, 1, 0])
    np.testing.assert_array_equal(order[:, 1:], [[0, 0], [1, 1], [2, 2]])
    np.testing.assert_array_equal(cloze_targets(np.array([[3], [EOS_ID], [-1]])), [[3], [-1], [-1]])


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_both_passes_match_the_reference(cell):
    """The no-grad cloze pass and the training pass's loss, on lines of several lengths (padded
    in one batch), against the plain numpy reference."""
    net = random_network(cell)
    lines = random_lines(np.random.default_rng(1), (1, 4, 7, 3))
    [(x, y)] = pad_lines(lines)
    cloze = Cloze(net)
    logp = cloze.log_probs(x, cloze_targets(y), cloze.forward.zero_state(len(lines)))
    total = 0.0
    for column, ids in enumerate(lines):
        expected = cloze_log_probs(cell, net.params, ids)[np.arange(len(ids)), ids]
        np.testing.assert_allclose(logp[:len(ids), column], expected, rtol=1e-10, atol=1e-12)
        assert not logp[len(ids):, column].any()           # <EOS> and padding: not predicted
        total += expected.sum()
    loss, count, _ = net.loss_and_gradients(x, y, net.zero_state(len(lines)), net.params.like())
    assert count == sum(len(ids) for ids in lines)
    assert loss == pytest.approx(-total / count, rel=1e-12)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_gradients_match_finite_differences(cell, monkeypatch):
    """float64, dropout on both stacks, padding, a nonzero initial state for the forward stack,
    and three columns split across two threads."""
    use_cores(monkeypatch, 2)
    net = random_network(cell)
    rng = np.random.default_rng(2)
    [(x, y)] = pad_lines(random_lines(rng, (4, 2, 3)))
    state = 0.5 * rng.standard_normal(net.zero_state(3).shape)
    assert len(net._split(*x.shape)) == 2

    def loss():
        return net.loss_and_gradients(x, y, state, net.params.like(), Dropout(0.3), mask_key=(1, 2))[0]

    grads = net.params.like()
    net.loss_and_gradients(x, y, state, grads, Dropout(0.3), mask_key=(1, 2))
    numeric = FlatArrays(net.params.shapes, numerical_gradient(loss, net.params.flat))
    for name, _ in net.params.shapes:
        assert np.abs(grads[name]).max() > 0, name       # every weight is used
        err = relative_error(grads[name], numeric[name])
        assert err < 1e-5, f"{cell} {name}: relative error {err:.2e}"


def test_column_shares_add_up_to_the_whole_batch():
    """Data-parallel training: shares of the columns, each given the whole batch's count of
    cloze targets (its characters: no <EOS>), add up to the whole batch, dropout included."""
    net = random_network("gru")
    lines = random_lines(np.random.default_rng(6), (4, 2, 3, 5))
    [(x, y)] = pad_lines(lines)
    count = net.target_count(y)
    assert count == sum(len(ids) for ids in lines) < int(np.count_nonzero(y >= 0))
    grads = net.params.like()
    loss, _, _ = net.loss_and_gradients(x, y, net.zero_state(4), grads, Dropout(0.3), mask_key=(8, 1))
    shares, share_loss = net.params.like(), 0.0
    for lo, hi in ((0, 1), (1, 4)):
        part = net.params.like()
        share_loss += net.loss_and_gradients(x[:, lo:hi], y[:, lo:hi], net.zero_state(hi - lo), part,
                                             Dropout(0.3), mask_key=(8, 1), first_column=lo, count=count)[0]
        shares.flat += part.flat
    assert share_loss == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(shares.flat, grads.flat, rtol=1e-10, atol=1e-13)


def test_new_state_is_the_forward_stacks(monkeypatch):
    """The state carried to the next batch is the forward stack's, as the left-to-right
    network's would be with the same weights; the backward stack carries nothing."""
    use_cores(monkeypatch, 1)
    net = random_network("lstm")
    x = np.random.default_rng(3).integers(2, V, (5, 2)).astype(np.int32)
    y = np.roll(x, -1, axis=0)
    state = net.zero_state(2)
    _, _, new_state = net.loss_and_gradients(x, y, state, net.params.like())
    engine = forward.Engine(net.stacks()[0])
    expected = engine.zero_state(2)
    engine.log_probs(x, y, expected)
    np.testing.assert_allclose(new_state, expected, rtol=1e-12, atol=1e-14)


def test_stream_validation_matches_the_reference(monkeypatch):
    """Pieces of seq_len characters, each read backwards from its end, the forward stack reading
    the BURN_IN characters before it (all of them, from <EOS>, for the early pieces)."""
    monkeypatch.setattr(bidirectional, "ROWS_PER_CALL", 200)      # several calls of columns
    net = random_network("gru")
    ids = np.random.default_rng(4).integers(2, V, 300).astype(np.int32)
    seq_len, burn = 40, bidirectional.BURN_IN
    log_prob, count = bidirectional.held_out_log_prob(net, "stream", ids, seq_len)
    inputs = np.concatenate([[EOS_ID], ids])
    expected = 0.0
    for s in range(0, len(ids), seq_len):
        piece = ids[s:s + seq_len]
        before = inputs[max(0, s - burn):s + 1]
        logp = cloze_log_probs("gru", net.params, piece, before=before)
        expected += logp[np.arange(len(piece)), piece].sum()
    assert count == len(ids)
    assert log_prob == pytest.approx(expected, rel=1e-10)


def test_lines_validation_matches_the_reference():
    net = random_network("lstm")
    lines = random_lines(np.random.default_rng(5), (3, 1, 6, 6, 2))
    log_prob, count = bidirectional.held_out_log_prob(net, "lines", lines, 100)
    expected = sum(cloze_log_probs("lstm", net.params, ids)[np.arange(len(ids)), ids].sum()
                   for ids in lines)
    assert count == sum(len(ids) for ids in lines)
    assert log_prob == pytest.approx(expected, rel=1e-10)


# ---- training ------------------------------------------------------------------------------------

def train(corpus, out, **options):
    trainer = new_trainer(str(corpus), str(out), **options)
    trainer.run()
    return trainer


@pytest.fixture(scope="module")
def told_by_the_right(tmp_path_factory):
    """Models of lines a1, b2, c3: the letter is told only by the digit after it."""
    folder = tmp_path_factory.mktemp("right")
    corpus = folder / "pairs.txt"
    corpus.write_text("a1\nb2\nc3\n" * 40)
    options = dict(hidden_size=16, num_layers=1, steps=150, lr=0.02, dropout=0.0, val_frac=0.0,
                   batch_size=20, mode="lines", seed=2)
    for name, bidirectional_run in (("bi", True), ("lr", False)):
        train(corpus, folder / f"{name}.npz", bidirectional=bidirectional_run, **options)
    return charlm.load(folder / "bi.npz"), charlm.load(folder / "lr.npz")


def test_only_the_right_context_tells_the_blank(told_by_the_right):
    bi, left_to_right = told_by_the_right
    for text, letter in (("_1", "a"), ("_2", "b"), ("_3", "c")):
        filled = bi.fill(text).blanks[0]
        assert filled.token == letter and filled.prob > 0.9
        assert left_to_right.fill(text).blanks[0].token == letter       # rescoring reads the digit
        guess = left_to_right.fill(text, left_only=True).blanks[0]
        assert guess.prob < 0.6                                         # a, b or c: about 1/3 each
    # the digit after a letter is told by the left context, which the cloze model reads too
    assert bi.fill("b_").text == "b2"


@pytest.mark.parametrize("mode,corpus", [("stream", "prose_file"), ("lines", "names_file")])
def test_resume_continues_bit_for_bit(tmp_path, request, tiny, mode, corpus):
    corpus = request.getfixturevalue(corpus)
    options = dict(bidirectional=True, dropout=0.3, eval_every=15, **tiny)
    whole = train(corpus, tmp_path / "whole.npz", steps=40, **options)
    train(corpus, tmp_path / "half.npz", steps=20, **options)
    resumed = new_trainer(str(corpus), str(tmp_path / "half.npz"), resume=True, steps=40)
    resumed.run()
    assert whole.config.mode == mode and resumed.config.bidirectional
    assert np.array_equal(whole.params.flat, resumed.params.flat)
    val = [{r.step: r.val_loss for r in t.run_state.history} for t in (whole, resumed)]
    assert val[0] == {step: loss for step, loss in val[1].items() if step != 20}


def test_checkpoint_round_trip(tmp_path, prose_file, tiny):
    out = tmp_path / "bi.npz"
    trainer = train(prose_file, out, bidirectional=True, steps=12, eval_every=6, **tiny)
    hidden, layers = tiny["hidden_size"], tiny["num_layers"]
    with np.load(out, allow_pickle=False) as npz:
        assert json.loads(npz["config"].item())["bidirectional"] is True
        for layer in range(layers):
            for key in ("W_x", "W_h", "b"):
                forward_stack = npz[f"layers.{layer}.{key}"]
                assert npz[f"backward.layers.{layer}.{key}"].shape == forward_stack.shape
        assert npz["out.W"].shape == (2 * hidden, len(trainer.dataset.vocab))
    loaded = charlm.load(out)
    assert isinstance(loaded.network, BidirectionalNetwork) and "bidirectional" in repr(loaded)
    best = FlatArrays(trainer.params.shapes, trainer.best)
    for name, _ in trainer.params.shapes:
        np.testing.assert_array_equal(loaded.network.params[name], best[name])
    # the best validation loss is the cloze loss of the held-out text under the saved weights
    log_prob, count = bidirectional.held_out_log_prob(loaded.network, "stream", trainer.dataset.val,
                                                      trainer.config.seq_len)
    assert -log_prob / count == pytest.approx(trainer.run_state.best_val_loss, rel=1e-6)


def test_a_checkpoint_without_the_field_is_left_to_right():
    config = Config.from_json(json.dumps({"cell": "gru", "hidden_size": 8, "mode": "lines"}))
    assert config.bidirectional is False


def test_weights_of_another_layout_are_refused(tmp_path):
    """A left-to-right checkpoint whose config claims bidirectional lacks the backward stack."""
    config = Config(cell="rnn", hidden_size=4, num_layers=1, mode="lines", dropout=0.0)
    vocab = Vocab(["<EOS>", "<UNK>", "a"])
    weights = FlatArrays(model.parameter_shapes("rnn", 3, 4, 1))
    checkpoint.save(tmp_path / "m.npz", checkpoint.Checkpoint(config, vocab, weights))
    config.bidirectional = True
    with np.load(tmp_path / "m.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["config"] = np.array(config.to_json())
    np.savez(tmp_path / "claims.npz", **arrays)
    with pytest.raises(CheckpointError, match="backward.layers.0"):
        charlm.load(tmp_path / "claims.npz")


# ---- the command line --------------------------------------------------------------------------

def test_train_json_sample_and_score_refuse(tmp_path, names_file):
    out = tmp_path / "bi.npz"
    done = run_charlm("train", names_file, "--bidirectional", "--hidden", 8, "--steps", 3,
                      "--out", out, "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["config"]["bidirectional"] is True and summary["best_val_loss"] > 0
    for command in (["sample"], ["score", "Anna"], ["score", "--file", names_file]):
        refused = run_charlm(*command, "--model", out)
        assert refused.returncode == 2
        assert refused.stdout == ""
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1 and "bidirectional" in lines[0] and "charlm fill" in lines[0]
    info = run_charlm("info", out, "--json")
    assert json.loads(info.stdout)["config"]["bidirectional"] is True
