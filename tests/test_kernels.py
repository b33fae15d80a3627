"""Every fast path of the training kernels against a plain numpy reference, on small shapes."""
import numpy as np
import pytest
from numba import njit

from charlm.kernels import activations, linalg, loss, optim
from charlm.kernels import recurrent as rk


@njit(error_model="numpy")
def _apply_tanh(x, out):
    for i in range(x.size):
        out[i] = activations.tanh(x[i])


@njit(error_model="numpy")
def _apply_sigmoid(x, out):
    for i in range(x.size):
        out[i] = activations.sigmoid(x[i])


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# ---- activations ---------------------------------------------------------------------------------

def test_float32_tanh_and_sigmoid_are_within_a_few_ulp():
    x = np.concatenate([np.linspace(-12, 12, 200_001), [0.0, -0.0, 1e-30, -1e-30, 50.0, -50.0]])
    x32 = x.astype(np.float32)
    exact = np.tanh(x32.astype(np.float64))
    out = np.empty_like(x32)
    _apply_tanh(x32, out)
    assert np.max(np.abs(out - exact)) < 5e-7
    assert np.max(np.abs(out - np.tanh(x32))) < 5e-7          # numpy's own float32 tanh
    assert np.all(np.abs(out) <= 1.0) and out[x32 == 0].tolist() == [0.0] * 3
    _apply_sigmoid(x32, out)
    assert np.max(np.abs(out - sigmoid(x32.astype(np.float64)))) < 5e-7
    assert np.all((out >= 0.0) & (out <= 1.0))


def test_float64_activations_are_the_library_functions():
    x = np.linspace(-20, 20, 1001)
    out = np.empty_like(x)
    _apply_tanh(x, out)
    np.testing.assert_allclose(out, np.tanh(x), rtol=1e-15)      # libm's and numpy's: 1 ulp apart
    _apply_sigmoid(x, out)
    np.testing.assert_allclose(out, sigmoid(x), rtol=1e-15)


# ---- the cells through time ---------------------------------------------------------------------

def reference_forward(cell, zx, b, w_h, h0, c0):
    """Plain numpy over float64: hs (T, B, H) and the activated gates (T, B, G*H)."""
    T, _, H = zx.shape[0], zx.shape[1], w_h.shape[0]
    h, c, hs, gates = h0, c0, [], []
    for t in range(T):
        if cell == "rnn":
            h = np.tanh(zx[t] + h @ w_h + b)
            g = h
        elif cell == "lstm":
            z = zx[t] + h @ w_h + b
            u, f, o, cc = sigmoid(z[:, :H]), sigmoid(z[:, H:2 * H]), sigmoid(z[:, 2 * H:3 * H]), np.tanh(z[:, 3 * H:])
            c = u * cc + f * c
            h = o * np.tanh(c)
            g = np.concatenate([u, f, o, cc], axis=1)
        else:
            ru = sigmoid(zx[t, :, :2 * H] + h @ w_h[:, :2 * H] + b[:2 * H])
            r, u = ru[:, :H], ru[:, H:]
            cc = np.tanh(zx[t, :, 2 * H:] + (r * h) @ w_h[:, 2 * H:] + b[2 * H:])
            h = u * cc + (1 - u) * h
            g = np.concatenate([r, u, cc], axis=1)
        hs.append(h)
        gates.append(g)
    return np.array(hs), np.array(gates)


def run_forward(cell, zx, b, w_h, h0, c0):
    T, B, _ = zx.shape
    H = w_h.shape[0]
    gates = zx.copy()
    hs = np.empty((T + 1, B, H), zx.dtype)
    hs[0] = h0
    w_ht = np.ascontiguousarray(w_h.T)
    if cell == "rnn":
        rk.rnn_forward(gates, b, w_ht, hs)
    elif cell == "lstm":
        cs = np.empty_like(hs)
        cs[0] = c0
        rk.lstm_forward(gates, b, w_ht, hs, cs)
    else:
        rk.gru_forward(gates, b, w_ht, hs, np.empty((T, B, H), zx.dtype))
    return hs[1:], gates


def cell_inputs(cell, dtype, T=5, B=3, H=16, seed=0):
    G = {"rnn": 1, "gru": 3, "lstm": 4}[cell]
    rng = np.random.default_rng(seed)
    zx = rng.standard_normal((T, B, G * H))
    b = 0.5 * rng.standard_normal(G * H)
    w_h = rng.standard_normal((H, G * H)) / np.sqrt(H)
    h0, c0 = rng.standard_normal((B, H)), rng.standard_normal((B, H))
    return [a.astype(dtype) for a in (zx, b, w_h, h0, c0)]


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("dtype,tol", [(np.float32, 2e-5), (np.float64, 1e-12)])
def test_cell_forward_matches_numpy(cell, dtype, tol):
    args = cell_inputs(cell, dtype)
    hs, gates = run_forward(cell, *args)
    ref_hs, ref_gates = reference_forward(cell, *(a.astype(np.float64) for a in args))
    np.testing.assert_allclose(hs, ref_hs, atol=tol, rtol=0)
    np.testing.assert_allclose(gates, ref_gates, atol=tol, rtol=0)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_float32_backward_matches_float64(cell):
    """The float64 backward pass is held to finite differences (test_gradients.py); float32,
    with its approximated activations, must agree with it."""
    results = []
    for dtype in (np.float32, np.float64):
        zx, b, w_h, h0, c0 = cell_inputs(cell, dtype)
        T, B, H = zx.shape[0], zx.shape[1], w_h.shape[0]
        gates = zx.copy()
        hs = np.empty((T + 1, B, H), dtype)
        hs[0] = h0
        dhs = np.random.default_rng(1).standard_normal((T, B, H)).astype(dtype)
        dz = gates                     # rnn and lstm: computed in place of the gates
        w_ht = np.ascontiguousarray(w_h.T)
        if cell == "rnn":
            rk.rnn_forward(gates, b, w_ht, hs)
            rk.rnn_backward(dhs, w_h, gates)
        elif cell == "lstm":
            cs = np.empty_like(hs)
            cs[0] = c0
            rk.lstm_forward(gates, b, w_ht, hs, cs)
            rk.lstm_backward(dhs, w_h, cs, gates)
        else:
            w_ru, w_c = np.ascontiguousarray(w_h[:, :2 * H]), np.ascontiguousarray(w_h[:, 2 * H:])
            rh = np.empty((T, B, H), dtype)
            dz = np.empty_like(zx)
            rk.gru_forward(gates, b, w_ht, hs, rh)
            rk.gru_backward(dhs, w_ru, w_c, hs, gates, dz)
        results.append(dz)
    np.testing.assert_allclose(results[0], results[1], atol=5e-5, rtol=1e-4)


# ---- loss ----------------------------------------------------------------------------------------

def loss_inputs(dtype, N=7, V=11):
    rng = np.random.default_rng(2)
    logits = (3 * rng.standard_normal((N, V))).astype(dtype)
    b = rng.standard_normal(V).astype(dtype)
    targets = rng.integers(0, V, N).astype(np.int32)
    targets[[1, 4]] = -1
    return logits, b, targets


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_cross_entropy_matches_numpy(dtype):
    logits, b, targets = loss_inputs(dtype)
    z = logits.astype(np.float64) + b
    logp = z - z.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    valid = targets >= 0
    scale = 1.0 / valid.sum()
    ref_loss = -logp[valid, targets[valid]].sum()
    ref_d = np.exp(logp)
    ref_d[valid, targets[valid]] -= 1.0
    ref_d[~valid] = 0.0
    ref_d *= scale

    dlogits, db = np.empty_like(logits), np.empty_like(b)
    total = loss.softmax_cross_entropy(logits, b, targets, scale, dlogits, db)
    tol = 1e-6 if dtype == np.float32 else 1e-13
    assert np.isclose(total, ref_loss, rtol=tol)
    np.testing.assert_allclose(dlogits, ref_d, atol=tol)
    np.testing.assert_allclose(db, ref_d.sum(0), atol=tol)

    out = np.empty(len(targets))
    loss.log_softmax_at(logits, b, targets, out)
    np.testing.assert_allclose(out[valid], logp[valid, targets[valid]], rtol=tol)
    assert np.all(out[~valid] == 0.0)


def test_all_padding_gives_zero_loss_and_gradient():
    logits, b, targets = loss_inputs(np.float32)
    targets[:] = -1
    dlogits, db = np.full_like(logits, np.nan), np.full_like(b, np.nan)
    assert loss.softmax_cross_entropy(logits, b, targets, 0.0, dlogits, db) == 0.0
    assert not dlogits.any() and not db.any()


# ---- products, gathers, BLAS threads -------------------------------------------------------------

def test_gather_and_scatter_rows():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((9, 6)).astype(np.float32)
    rows = rng.integers(0, 9, 20).astype(np.int32)
    out = np.empty((20, 6), np.float32)
    linalg.gather_rows(w, rows, out)
    np.testing.assert_array_equal(out, w[rows])
    dz = rng.standard_normal((20, 6)).astype(np.float32)
    dw = np.zeros_like(w)
    linalg.scatter_add_rows(dw, rows, dz)
    ref = np.zeros_like(w)
    np.add.at(ref, rows, dz)
    np.testing.assert_allclose(dw, ref, rtol=1e-6)


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 5, 7), (25, 300, 64), (8, 600, 13)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_nt_matches_numpy(shape, dtype):
    """Odd row counts (the last row pairs with itself) and ragged column blocks."""
    M, K, N = shape
    rng = np.random.default_rng(6)
    a, wt = rng.standard_normal((M, K)).astype(dtype), rng.standard_normal((N, K)).astype(dtype)
    out = np.empty((M, N), dtype)
    linalg.matmul_nt(a, wt, out)
    np.testing.assert_allclose(out, a.astype(np.float64) @ wt.T.astype(np.float64),
                               atol=1e-4 if dtype == np.float32 else 1e-12)


def test_matmul_with_transposed_operands():
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((7, 5)), rng.standard_normal((7, 3))
    out = np.empty((5, 3))
    linalg.matmul(a.T, b, out)
    np.testing.assert_allclose(out, a.T @ b)


def test_blas_threads_restores_the_setting():
    if linalg._blas_thread_functions() is None:
        pytest.skip("Numba's BLAS is not an OpenBLAS reachable here")
    get, _ = linalg._blas_thread_functions()
    before = get()
    with linalg.blas_threads(1):
        assert get() == 1
    assert get() == before


# ---- optimizers ----------------------------------------------------------------------------------

def optim_inputs(seed=5, n=1000):
    rng = np.random.default_rng(seed)
    p = rng.standard_normal(n).astype(np.float32)
    g = rng.standard_normal(n).astype(np.float32)
    return p, g


def test_squared_norm():
    _, g = optim_inputs()
    assert np.isclose(optim.squared_norm(g), np.sum(g.astype(np.float64) ** 2), rtol=1e-12)


def test_adam_matches_the_textbook_form():
    p, g = optim_inputs()
    m, v = np.zeros_like(p), np.zeros_like(p)
    ref_p, ref_m, ref_v = p.astype(np.float64), np.zeros(p.size), np.zeros(p.size)
    lr, b1, b2, eps, scale = 1e-2, 0.9, 0.999, 1e-8, 0.5
    for t in (1, 2, 3):
        optim.adam_update(p, g, m, v, lr, scale, b1, b2, eps, t)
        gs = g.astype(np.float64) * scale
        ref_m = b1 * ref_m + (1 - b1) * gs
        ref_v = b2 * ref_v + (1 - b2) * gs * gs
        m_hat, v_hat = ref_m / (1 - b1 ** t), ref_v / (1 - b2 ** t)
        ref_p -= lr * m_hat / (np.sqrt(v_hat) + eps)
    np.testing.assert_allclose(p, ref_p, atol=1e-6)
    np.testing.assert_allclose(m, ref_m, rtol=1e-5)
    np.testing.assert_allclose(v, ref_v, rtol=1e-5)


def test_rmsprop_and_sgd():
    p, g = optim_inputs()
    v = np.zeros_like(p)
    ref_p = p.astype(np.float64)
    optim.rmsprop_update(p, g, v, 1e-2, 0.5, 0.99, 1e-8)
    gs = g.astype(np.float64) * 0.5
    ref_v = 0.01 * gs * gs
    np.testing.assert_allclose(v, ref_v, rtol=1e-5)
    np.testing.assert_allclose(p, ref_p - 1e-2 * gs / (np.sqrt(ref_v) + 1e-8), atol=1e-6)

    p, g = optim_inputs()
    ref_p = p.astype(np.float64) - 0.1 * 0.5 * g
    optim.sgd_update(p, g, 0.1, 0.5)
    np.testing.assert_allclose(p, ref_p, atol=1e-6)
