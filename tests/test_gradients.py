"""The backward pass of every cell against central finite differences of the forward pass.

float64 throughout (the kernels then use the exact tanh and exp), two layers, a nonzero initial
state (so that the first step's use of h_0 and c_0 is checked too), and three sequences, so that
the batch is split across two threads on a two-core machine and the shards' gradients are summed.
"""
import math

import numpy as np
import pytest

from charlm.network.engine import Engine
from charlm.network.stack import Dropout, FlatArrays, Network, init_parameters, parameter_shapes

V, H, L, T, B = 6, 5, 2, 4, 3
EPS = 1e-5


def relative_error(a, b, floor=1e-4):
    """Largest |a - b| / max(|a| + |b|, floor): relative where the values are large, absolute
    (scaled by 1/floor) where both are close to zero."""
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), floor)))


def setup(cell, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    params = FlatArrays(parameter_shapes(cell, V, H, L), dtype=dtype)
    init_parameters(params, cell, rng)
    params.flat += (0.1 * rng.standard_normal(params.flat.size)).astype(dtype)   # biases too
    net = Network(cell, V, H, L, params)
    x = rng.integers(0, V, (T, B)).astype(np.int32)
    y = rng.integers(0, V, (T, B)).astype(np.int32)
    state = (0.5 * rng.standard_normal(net.zero_state(B).shape)).astype(dtype)
    return net, params, x, y, state


def numerical_gradient(loss, flat):
    grad = np.empty_like(flat)
    for i in range(flat.size):
        keep = flat[i]
        flat[i] = keep + EPS
        plus = loss()
        flat[i] = keep - EPS
        minus = loss()
        flat[i] = keep
        grad[i] = (plus - minus) / (2 * EPS)
    return grad


def check(cell, y_mask=None, dropout=Dropout()):
    net, params, x, y, state = setup(cell)
    if y_mask is not None:
        y = np.where(y_mask, -1, y).astype(np.int32)
    grads = params.like()

    def loss():
        # the same mask key draws the same dropout masks on every call
        g = params.like()
        return net.loss_and_gradients(x, y, state, g, dropout, mask_key=(1, 2))[0]

    net.loss_and_gradients(x, y, state, grads, dropout, mask_key=(1, 2))
    numeric = numerical_gradient(loss, params.flat)
    for name, _ in params.shapes:
        err = relative_error(grads[name], FlatArrays(params.shapes, numeric)[name])
        assert err < 1e-5, f"{cell} {name}: relative error {err:.2e}"


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_gradients_match_finite_differences(cell):
    check(cell)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_gradients_with_padding_targets(cell):
    mask = np.zeros((T, B), bool)
    mask[2:, 0] = True        # a sequence that ends early
    mask[:, 2] = True         # a sequence that is all padding
    check(cell, y_mask=mask)


@pytest.mark.parametrize("dropout", [Dropout(0.3), Dropout(0.3, locked=True),
                                     Dropout(weight=0.3), Dropout(0.2, True, 0.4)])
def test_gradients_with_dropout(dropout):
    check("lstm", dropout=dropout)


@pytest.mark.parametrize("cell", ["rnn", "gru"])
def test_gradients_with_weight_drop(cell):
    check(cell, dropout=Dropout(weight=0.3))


def test_weight_drop_drops_the_same_recurrent_weights_for_every_sequence_and_thread(monkeypatch):
    """A weight-drop step is the step of the network whose W_h are masked by one mask, drawn
    from the step's key alone: the same however the batch is split, and another next step."""
    results = []
    for cores in (1, 2):
        use_cores(monkeypatch, cores)
        net, params, x, y, state = setup("lstm")
        grads = params.like()
        loss = net.loss_and_gradients(x, y, state, grads, Dropout(weight=0.5), mask_key=(3,))[0]
        masks = [w.mask for w in net._dropped_weights(Dropout(weight=0.5), (3,))]
        results.append((loss, grads.flat.copy(), masks))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-12)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-12, atol=1e-14)
    masks = results[0][2]
    assert all(set(np.unique(m)) == {0.0, 2.0} for m in masks)
    assert not np.array_equal(masks[0], masks[1])                 # each layer its own
    net, params, x, y, state = setup("lstm")
    later = [w.mask for w in net._dropped_weights(Dropout(weight=0.5), (4,))]
    assert not np.array_equal(later[0], masks[0])                   # each step its own
    # the step equals a plain step of the network with the masked weights, whose W_h gradient
    # reaches W_h through the mask
    plain = params.like()
    plain.flat[:] = params.flat
    for l, m in enumerate(masks):
        plain[f"layers.{l}.W_h"][:] *= m
    expected = plain.like()
    loss = Network("lstm", V, H, L, plain).loss_and_gradients(x, y, state, expected)[0]
    for l, m in enumerate(masks):
        expected[f"layers.{l}.W_h"][:] *= m
    assert loss == pytest.approx(results[0][0], rel=1e-12)
    np.testing.assert_allclose(expected.flat, results[0][1], rtol=1e-10, atol=1e-13)


def test_locked_dropout_keeps_one_mask_for_every_step_of_a_sequence():
    net = setup("lstm")[0]
    locked = net.dropout_masks(Dropout(0.3, locked=True), (5, 9), range(0, 7), T)
    assert locked.shape == (L, 1, 7, H)
    assert set(np.unique(locked)) == {0.0, 1.0 / 0.7}
    assert not np.array_equal(locked[:, :, 0], locked[:, :, 1])


def test_loss_is_the_mean_negative_log_probability():
    """The training pass's loss against the no-grad forward path (charlm.network.engine.Engine)."""
    net, params, x, y, state = setup("gru")
    y[1, 1] = -1
    loss, count, new_state = net.loss_and_gradients(x, y, state, params.like())
    engine = Engine(net)
    state2 = state.copy()
    logp = engine.log_probs(x, y, state2)                 # advances state2 in place
    assert count == T * B - 1
    assert np.isclose(loss, -logp.sum() / count, rtol=1e-12)
    assert logp[1, 1] == 0.0
    np.testing.assert_allclose(new_state, state2, rtol=1e-12, atol=1e-14)


def use_cores(monkeypatch, n):
    """Pretend the machine has n cores: the training pass and the forward path split their
    batches into that many shards."""
    monkeypatch.setenv("CHARLM_THREADS", str(n))     # network.parallel.cores() reads it


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_split_batch_equals_one_shard(cell, monkeypatch):
    """Splitting the batch across threads changes nothing but the order of the sums."""
    results = []
    for cores in (1, 2):
        use_cores(monkeypatch, cores)
        net, params, x, y, state = setup(cell)
        assert len(net._split(T, B)) == cores
        grads = params.like()
        loss, _, new_state = net.loss_and_gradients(x, y, state, grads, Dropout(0.3, weight=0.2),
                                                    mask_key=(4,))
        log_softmax = Engine(net).log_softmax(x, state.copy())
        results.append((loss, grads.flat.copy(), new_state, log_softmax))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_dropout_masks_are_a_function_of_the_global_column():
    net = setup("lstm")[0]
    whole = net.dropout_masks(Dropout(0.3), (5, 9), range(0, 7), T)
    assert whole.shape == (L, T, 7, H) and whole.dtype == net.params.flat.dtype
    assert set(np.unique(whole)) == {0.0, 1.0 / 0.7}
    for k in (1, 3, 6):
        parts = [net.dropout_masks(Dropout(0.3), (5, 9), range(lo, hi), T)
                 for lo, hi in ((0, k), (k, 7))]
        np.testing.assert_array_equal(np.concatenate(parts, axis=2), whole)
    np.testing.assert_array_equal(net.dropout_masks(Dropout(0.3), (5, 9), [4], T)[:, :, 0],
                                  whole[:, :, 4])
    next_step = net.dropout_masks(Dropout(0.3), (5, 10), range(0, 7), T)
    assert not np.array_equal(next_step, whole)
    assert not np.array_equal(whole[:, :, 0], whole[:, :, 1])


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_column_shares_add_up_to_the_whole_batch(cell, k, dtype, monkeypatch):
    """Data-parallel training: the columns [0, k) and [k, B) run as separate calls (first_column,
    and the whole batch's target count), their gradients summed, give the whole batch's gradient
    and loss, dropout masks included. Where the shares are the thread shards of the whole batch
    (k = 2 of 3 columns on two cores), the sums are the same and the result is bit-equal;
    otherwise equal to rounding (BLAS sums the weight gradients' rows in another order)."""
    use_cores(monkeypatch, 2)
    net, params, x, y, state = setup(cell, dtype=dtype)
    y[3, 0] = y[1, 2] = -1
    count = int(np.count_nonzero(y >= 0))
    grads = params.like()
    loss, n, new_state = net.loss_and_gradients(x, y, state, grads, Dropout(0.3, weight=0.2),
                                                mask_key=(8, 1))
    assert n == count

    use_cores(monkeypatch, 1)
    total, summed, states = 0.0, params.like(), []
    for lo, hi in ((0, k), (k, B)):
        share = params.like()
        part_loss, part_count, part_state = net.loss_and_gradients(
            x[:, lo:hi], y[:, lo:hi], np.ascontiguousarray(state[:, :, lo:hi]), share,
            Dropout(0.3, weight=0.2), mask_key=(8, 1), first_column=lo, count=count)
        assert part_count == count
        total += part_loss
        summed.flat += share.flat
        states.append(part_state)
    rounding = 1e-12 if dtype == np.float64 else 1e-5
    assert total == pytest.approx(loss, rel=rounding)
    np.testing.assert_array_equal(np.concatenate(states, axis=2), new_state)
    if k == 2:
        np.testing.assert_array_equal(summed.flat, grads.flat)
    else:
        np.testing.assert_allclose(summed.flat, grads.flat, rtol=rounding,
                                   atol=rounding * np.abs(grads.flat).max())


def test_dropout_masks_keep_each_unit_independently_with_probability_one_minus_the_rate():
    net = Network("lstm", 10, 64, 2, FlatArrays(parameter_shapes("lstm", 10, 64, 2)))
    masks = net.dropout_masks(Dropout(0.3), (7, 1), range(100), 40)         # (2, 40, 100, 64)
    assert set(np.unique(masks)) == {0.0, np.float32(1 / 0.7)}
    kept = (masks > 0).astype(np.float64)
    n = kept.size
    assert abs(kept.mean() - 0.7) < 5 * math.sqrt(0.21 / n)
    columns = kept.transpose(2, 0, 1, 3).reshape(100, -1)
    pairs = np.corrcoef(columns)[~np.eye(100, dtype=bool)]
    assert abs(pairs.mean()) < 0.002 and pairs.std() < 1.3 / math.sqrt(columns.shape[1])
    units = kept.reshape(-1, 64)
    assert abs(np.corrcoef(units[:, :-1].ravel(), units[:, 1:].ravel())[0, 1]) < 5 / math.sqrt(n)
