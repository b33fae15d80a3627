"""The backward pass of every cell against central finite differences of the forward pass.

float64 throughout (the kernels then use the exact tanh and exp), two layers, a nonzero initial
state (so that the first step's use of h_0 and c_0 is checked too), and three sequences, so that
the batch is split across two threads on a two-core machine and the shards' gradients are summed.
"""
import numpy as np
import pytest

from charlm import model
from charlm.model import FlatArrays, Network, init_parameters, parameter_shapes

V, H, L, T, B = 6, 5, 2, 4, 3
EPS = 1e-5


def relative_error(a, b, floor=1e-4):
    """Largest |a - b| / max(|a| + |b|, floor): relative where the values are large, absolute
    (scaled by 1/floor) where both are close to zero."""
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), floor)))


def setup(cell, seed=0):
    rng = np.random.default_rng(seed)
    params = FlatArrays(parameter_shapes(cell, V, H, L), dtype=np.float64)
    init_parameters(params, cell, rng)
    params.flat += 0.1 * rng.standard_normal(params.flat.size)   # biases away from their init
    net = Network(cell, V, H, L, params)
    x = rng.integers(0, V, (T, B)).astype(np.int32)
    y = rng.integers(0, V, (T, B)).astype(np.int32)
    state = 0.5 * rng.standard_normal(net.zero_state(B).shape)
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


def check(cell, y_mask=None, dropout=0.0):
    net, params, x, y, state = setup(cell)
    if y_mask is not None:
        y = np.where(y_mask, -1, y).astype(np.int32)
    grads = params.like()

    def loss():
        # a fresh generator with the same seed draws the same dropout masks on every call
        g = params.like()
        return net.loss_and_gradients(x, y, state, g, dropout, np.random.default_rng(1))[0]

    net.loss_and_gradients(x, y, state, grads, dropout, np.random.default_rng(1))
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


def test_gradients_with_dropout():
    check("lstm", dropout=0.3)


def test_loss_is_the_mean_negative_log_probability():
    net, params, x, y, state = setup("gru")
    y[1, 1] = -1
    loss, count, new_state = net.loss_and_gradients(x, y, state, params.like())
    logp, state2 = net.log_probs(x, y, state)
    assert count == T * B - 1
    assert np.isclose(loss, -logp.sum() / count)
    assert logp[1, 1] == 0.0
    np.testing.assert_allclose(new_state, state2)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_split_batch_equals_one_shard(cell, monkeypatch):
    """Splitting the batch across threads changes nothing but the order of the sums."""
    results = []
    for cores in (1, 2):
        monkeypatch.setattr(model, "_cores", lambda cores=cores: cores)
        net, params, x, y, state = setup(cell)
        grads = params.like()
        loss, _, new_state = net.loss_and_gradients(x, y, state, grads)
        logits, _ = net.forward(x, state)
        results.append((loss, grads.flat.copy(), new_state, logits))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
