"""Every fast path of the kernels against a plain numpy reference (tests/reference.py), on small
shapes: the sequence pass (forward and backward through time, with the gradient at the initial
state), the no-grad forward path, the loss, the softmax, the products and the optimizers."""
import functools
import subprocess
import sys
import threading

import numpy as np
import pytest
from numba import njit

from charlm.network import engine as forward
from charlm.network.engine import Engine
from charlm.kernels import activations, linalg, loss, optim
from charlm.kernels import recurrent as rk
from charlm.kernels.barrier import SYNC_STRIDE, barrier, release
from charlm.network.parallel import fan_out, split
from charlm.network.stack import FlatArrays, Network, init_parameters, parameter_shapes
from reference import ReferenceNetwork, layer_step
from reference import log_softmax as reference_log_softmax


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
    """The reference network's layer step (tests/reference.py) through time, float64: hs (T, B, H)
    and the activated gates (T, B, G*H)."""
    h, c, hs, gates = h0, c0, [], []
    for t in range(zx.shape[0]):
        h, c, g = layer_step(cell, zx[t], h, c, w_h, b)
        hs.append(h)
        gates.append(g)
    return np.array(hs), np.array(gates)


def aux_buffer(cell, T, B, H, dtype, c0):
    """The forward kernels' aux: cs (T+1, B, H) with cs[0] = c0 for the LSTM, rh (T, B, H) for the
    GRU, an empty array for the rnn."""
    if cell == "lstm":
        cs = np.empty((T + 1, B, H), dtype)
        cs[0] = c0
        return cs
    return np.empty((T if cell == "gru" else 0, B, H), dtype)


def run_forward(cell, zx, b, w_h, h0, c0, blas=False):
    """The forward kernel: (hs (T, B, H), activated gates, hs with h_0, aux)."""
    T, B, _ = zx.shape
    H = w_h.shape[0]
    gates = zx.copy()
    hs = np.empty((T + 1, B, H), zx.dtype)
    hs[0] = h0
    aux = aux_buffer(cell, T, B, H, zx.dtype, c0)
    w = w_h if blas else np.ascontiguousarray(w_h.T)      # as the product reads it
    getattr(rk, f"{cell}_forward")(gates, b, w, hs, aux, blas)
    return hs[1:], gates, hs, aux


def run_backward(cell, dhs, w_h, hs, aux, gates, dh=None, dc=None):
    """The backward kernel from the carry (dh, dc) at the final state (zeros if not given):
    (dz (T, B, G*H), dL/dh_0, dL/dc_0). gates is left as it was."""
    gates = gates.copy()
    dz = np.full_like(gates, np.nan)       # rnn and lstm compute dz in place of the gates
    B, H = dhs.shape[1:]
    dh = np.zeros((B, H), dhs.dtype) if dh is None else dh.copy()
    dc = np.zeros((B, H), dhs.dtype) if dc is None else dc.copy()
    getattr(rk, f"{cell}_backward")(dhs, w_h, hs, aux, gates, dz, dh, dc)
    return (dz if cell == "gru" else gates), dh, dc


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
@pytest.mark.parametrize("blas", [False, True])
def test_cell_forward_matches_numpy(cell, dtype, tol, blas):
    """Both ways of running the recurrent product (matmul_nt for training, BLAS for the no-grad
    pass) give the reference's states, gates and, for the LSTM, cell states."""
    args = cell_inputs(cell, dtype)
    hs, gates, _, aux = run_forward(cell, *args, blas=blas)
    ref_hs, ref_gates = reference_forward(cell, *(a.astype(np.float64) for a in args))
    np.testing.assert_allclose(hs, ref_hs, atol=tol, rtol=0)
    np.testing.assert_allclose(gates, ref_gates, atol=tol, rtol=0)
    H = args[2].shape[0]
    if cell == "gru":      # rh = r * h_{t-1}, the input of the candidate's recurrent product
        h_prev = np.concatenate([args[3][None].astype(np.float64), ref_hs[:-1]])
        np.testing.assert_allclose(aux, ref_gates[..., :H] * h_prev, atol=tol, rtol=0)
    if cell == "lstm":     # c_t from o and h_t: h = o tanh(c)
        np.testing.assert_array_equal(aux[0], args[4])
        np.testing.assert_allclose(ref_gates[..., 2 * H:3 * H] * np.tanh(aux[1:].astype(np.float64)),
                                   ref_hs, atol=tol, rtol=0)


def run_split(kernel, args, H, workers):
    """A split kernel (kernels.recurrent) on ``workers`` threads, the units cut as evenly as
    split() cuts them, from phase 0."""
    sync = np.zeros(workers * SYNC_STRIDE, np.int64)
    edges = split(H, workers)
    phases = fan_out([functools.partial(kernel, *args, edges[k], edges[k + 1], sync, k, workers, 0)
                      for k in range(workers)])
    assert len(set(phases)) == 1
    return phases[0]


def split_pass(cell, args, dhs, workers):
    """Forward then backward through the split kernels: (hs, gates, aux, dz, dh_0, dc_0)."""
    zx, b, w_h, h0, c0 = args
    T, B, _ = zx.shape
    H = w_h.shape[0]
    gates, hs = zx.copy(), np.empty((T + 1, B, H), zx.dtype)
    hs[0] = h0
    aux = aux_buffer(cell, T, B, H, zx.dtype, c0)
    steps = run_split(getattr(rk, f"{cell}_forward_split"), (gates, b, w_h, hs, aux), H, workers)
    assert steps == T * (2 if cell == "gru" else 1)            # one barrier a step, the GRU's two
    forward_gates = gates.copy()
    dz = np.full_like(gates, np.nan)
    dh, dc = np.zeros((B, H), zx.dtype), np.zeros((B, H), zx.dtype)
    run_split(getattr(rk, f"{cell}_backward_split"), (dhs, w_h, hs, aux, gates, dz, dh, dc), H,
              workers)
    return hs, forward_gates, aux, (dz if cell == "gru" else gates), dh, dc


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("dtype,tol", [(np.float32, 2e-5), (np.float64, 1e-12)])
def test_split_kernels_are_the_whole_layer_kernels_and_any_split_gives_the_same_bits(cell, dtype,
                                                                                      tol):
    """The units of a layer split among 1, 2 or 3 workers (37 units: uneven shares; 5 sequences:
    the products' blocks of four and the row left over) give the whole-layer kernels' states,
    gates and gradients, and the same bits whatever the split."""
    args = cell_inputs(cell, dtype, T=6, B=5, H=37)
    dhs = np.random.default_rng(1).standard_normal((6, 5, 37)).astype(dtype)
    _, gates, hs, aux = run_forward(cell, *args)
    whole = (hs, gates, aux) + run_backward(cell, dhs, args[2], hs, aux, gates)
    runs = [split_pass(cell, args, dhs, workers) for workers in (1, 2, 3)]
    for got, want in zip(runs[0], whole):
        np.testing.assert_allclose(got, want, atol=tol, rtol=tol)
    for other in runs[1:]:
        for got, want in zip(other, runs[0]):
            np.testing.assert_array_equal(got, want)


def test_workers_run_to_their_end_when_one_fails_before_a_barrier():
    """A worker that fails never reaches the barrier the others wait at: fan_out's on_failure
    releases them, and the failure is raised once all have ended."""
    sync = np.zeros(3 * SYNC_STRIDE, np.int64)
    passed = []

    def waits(worker):
        barrier(sync, worker, 3, 1)
        passed.append(worker)

    def fails():
        raise MemoryError("a worker's scratch")

    outcome = []

    def run():
        try:
            fan_out([functools.partial(waits, 0), functools.partial(waits, 1), fails],
                    on_failure=functools.partial(release, sync))
        except MemoryError as error:
            outcome.append(error)

    caller = threading.Thread(target=run, daemon=True)
    caller.start()
    caller.join(timeout=120)           # the run ends at once when the barrier is released
    assert not caller.is_alive()
    assert sorted(passed) == [0, 1] and len(outcome) == 1


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_float32_backward_matches_float64(cell):
    """The float64 backward pass is held to finite differences (test_gradients.py and below);
    float32, with its approximated activations, must agree with it, also at the initial state."""
    results = []
    for dtype in (np.float32, np.float64):
        zx, b, w_h, h0, c0 = cell_inputs(cell, dtype)
        _, gates, hs, aux = run_forward(cell, zx, b, w_h, h0, c0)
        dhs = np.random.default_rng(1).standard_normal(zx.shape[:2] + (w_h.shape[0],)).astype(dtype)
        results.append(run_backward(cell, dhs, w_h, hs, aux, gates))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, atol=5e-5, rtol=1e-4)


def _loss_of_initial_state(cell, zx, b, w_h, h0, c0, dhs, dh_T, dc_T):
    """sum_t <dhs_t, h_t> + <dh_T, h_T> (+ <dc_T, c_T>), float64 through the reference cells."""
    h, c, total = h0, c0, 0.0
    for t in range(zx.shape[0]):
        h, c, _ = layer_step(cell, zx[t], h, c, w_h, b)
        total += (dhs[t] * h).sum()
    return total + (dh_T * h).sum() + ((dc_T * c).sum() if cell == "lstm" else 0.0)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_gradient_at_the_initial_state_matches_finite_differences(cell):
    """With a gradient carried in at the final state (dh_T, and dc_T for the LSTM), the carry out
    is the gradient of the loss with respect to h_0 (and c_0)."""
    zx, b, w_h, h0, c0 = cell_inputs(cell, np.float64, T=4, B=2, H=5)
    rng = np.random.default_rng(4)
    dhs, dh_T, dc_T = rng.standard_normal((4, 2, 5)), rng.standard_normal((2, 5)), rng.standard_normal((2, 5))
    _, gates, hs, aux = run_forward(cell, zx, b, w_h, h0, c0)
    _, dh0, dc0 = run_backward(cell, dhs, w_h, hs, aux, gates, dh_T, dc_T)
    loss = lambda h, c: _loss_of_initial_state(cell, zx, b, w_h, h, c, dhs, dh_T, dc_T)  # noqa: E731
    eps = 1e-6
    for state, analytic in ((h0, dh0), (c0, dc0)) if cell == "lstm" else ((h0, dh0),):
        numeric = np.zeros_like(state)
        for idx in np.ndindex(state.shape):
            up, down = state.copy(), state.copy()
            up[idx] += eps
            down[idx] -= eps
            args = (up, c0) if state is h0 else (h0, up)
            args_down = (down, c0) if state is h0 else (h0, down)
            numeric[idx] = (loss(*args) - loss(*args_down)) / (2 * eps)
        np.testing.assert_allclose(analytic, numeric, atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("cut", [1, 2, 4])
def test_backward_in_two_pieces_chained_by_the_carry_is_one_pass(cell, cut):
    """Steps cut.. run back first, their carry out handed in to steps 0..cut-1: the same dz and
    the same gradient at the initial state as one pass (the step-by-step use of the gradients
    view)."""
    zx, b, w_h, h0, c0 = cell_inputs(cell, np.float64, T=5)
    _, gates, hs, aux = run_forward(cell, zx, b, w_h, h0, c0)
    dhs = np.random.default_rng(5).standard_normal(zx.shape[:2] + (w_h.shape[0],))
    whole = run_backward(cell, dhs, w_h, hs, aux, gates)
    split_aux = lambda lo, hi: aux[lo:hi + (cell == "lstm")]  # noqa: E731  (cs has T+1 steps)
    late = run_backward(cell, dhs[cut:], w_h, hs[cut:], split_aux(cut, 5), gates[cut:])
    early = run_backward(cell, dhs[:cut], w_h, hs[:cut + 1], split_aux(0, cut), gates[:cut],
                         late[1], late[2])
    np.testing.assert_allclose(np.concatenate([early[0], late[0]]), whole[0], atol=1e-12)
    np.testing.assert_allclose(early[1], whole[1], atol=1e-12)
    np.testing.assert_allclose(early[2], whole[2], atol=1e-12)


# ---- the no-grad forward path against the reference network ------------------------------------

def small_network(cell, V=7, H=6, L=2, seed=0):
    params = FlatArrays(parameter_shapes(cell, V, H, L))
    init_parameters(params, cell, np.random.default_rng(seed))
    rng = np.random.default_rng(seed + 1)
    params.flat += (0.3 * rng.standard_normal(params.flat.size)).astype(np.float32)   # biases too
    return Network(cell, V, H, L, params)


ENGINE_CASES = [(cell, B, L) for B, L in ((3, 2), (40, 2), (3, 3))   # 40 columns: two threads
                for cell in ("rnn", "gru", "lstm")]

def engine_and_reference(cell, B, L, T=9):
    net = small_network(cell, L=L)
    x = np.random.default_rng(2).integers(0, net.vocab_size, (T, B)).astype(np.int32)
    return net, Engine(net), x, ReferenceNetwork(cell, net.params).run(x)


@pytest.mark.parametrize("cell,B,L", ENGINE_CASES)
def test_engine_log_probabilities_match_the_reference_network(cell, B, L):
    net, engine, x, ref = engine_and_reference(cell, B, L)
    T = x.shape[0]
    state = engine.zero_state(B)
    log_softmax = engine.log_softmax(x, state)
    assert log_softmax.shape == (T, B, net.vocab_size) and log_softmax.dtype == np.float64
    np.testing.assert_allclose(log_softmax, ref["log_probs"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(state[:, 0], ref["hs"][:, -1], atol=1e-5, rtol=0)   # advanced
    if cell == "lstm":
        np.testing.assert_allclose(state[:, 1], ref["cs"][:, -1], atol=1e-5, rtol=0)
    y = np.random.default_rng(3).integers(0, net.vocab_size, (T, B)).astype(np.int32)
    y[-2:, 0] = -1
    logp = engine.log_probs(x, y, engine.zero_state(B))
    expected = np.take_along_axis(ref["log_probs"], np.maximum(y, 0)[..., None], 2)[..., 0]
    np.testing.assert_allclose(logp, np.where(y >= 0, expected, 0.0), atol=1e-5, rtol=0)
    assert np.all(logp[-2:, 0] == 0.0)


@pytest.mark.parametrize("cell,B,L", ENGINE_CASES)
def test_engine_states_match_the_reference_network(cell, B, L):
    """Every layer's h (and the LSTM's c) after each step."""
    net, engine, x, ref = engine_and_reference(cell, B, L)
    state = engine.zero_state(B)
    states = engine.states(x, state)
    assert states.shape == (L, net.cell.num_states) + x.shape + (net.hidden_size,)
    np.testing.assert_allclose(states[:, 0], ref["hs"], atol=1e-5, rtol=0)
    if cell == "lstm":
        np.testing.assert_allclose(states[:, 1], ref["cs"], atol=1e-5, rtol=0)
    np.testing.assert_array_equal(state, states[:, :, -1])        # the state advanced in place


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_engine_runs_time_blocks_and_carries_its_state(cell, monkeypatch):
    """Blocks of a few steps, and a text fed in two calls, give what one pass gives."""
    net = small_network(cell)
    x = np.random.default_rng(4).integers(0, net.vocab_size, (11, 3)).astype(np.int32)
    ref = ReferenceNetwork(cell, net.params).run(x)
    monkeypatch.setattr(forward, "ROWS_PER_BLOCK", 6)        # 2 steps of 3 columns per block
    engine = Engine(net)
    state = engine.zero_state(3)
    parts = [engine.log_softmax(x[:4], state), engine.log_softmax(x[4:], state)]
    np.testing.assert_allclose(np.concatenate(parts), ref["log_probs"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_an_engine_reads_the_weights_as_they_are_now(cell):
    """Training keeps one Engine for validation while it updates the weights in place: each call
    reads them as they are then."""
    net = small_network(cell)
    engine = Engine(net)
    x = np.random.default_rng(9).integers(0, net.vocab_size, (6, 2)).astype(np.int32)
    engine.log_softmax(x, engine.zero_state(2))
    net.params.flat += np.float32(0.1)
    np.testing.assert_allclose(engine.log_softmax(x, engine.zero_state(2)),
                               ReferenceNetwork(cell, net.params).run(x)["log_probs"], atol=1e-5)


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


@njit
def _log_softmax_rows(logits, b, out):
    for n in range(logits.shape[0]):
        loss.log_softmax_row(logits[n], b, out[n])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numba_log_softmax_row_is_the_reference(dtype):
    logits, b, _ = loss_inputs(dtype)
    logits[0] += dtype(1e4)        # far beyond exp's range
    out = np.empty(logits.shape, np.float64)
    _log_softmax_rows(logits, b, out)
    expected = reference_log_softmax((logits + b).astype(np.float64))   # z + b in the dtype
    np.testing.assert_allclose(out, expected, atol=1e-5 if dtype == np.float32 else 1e-12)


def test_all_padding_gives_zero_loss_and_gradient():
    logits, b, targets = loss_inputs(np.float32)
    targets[:] = -1
    dlogits, db = np.full_like(logits, np.nan), np.full_like(b, np.nan)
    assert loss.softmax_cross_entropy(logits, b, targets, 0.0, dlogits, db) == 0.0
    assert not dlogits.any() and not db.any()


def test_numpy_softmax_is_the_reference_and_never_overflows():
    """network.engine's softmax, the one every numpy caller uses: the reference's log softmax
    (tests/reference.py), float64, along the last axis, for logits far beyond exp's range."""
    rng = np.random.default_rng(8)
    z = rng.standard_normal((3, 4, 9)).astype(np.float32)
    z[0, 0] += 1e4
    z[1, 1] -= 1e4
    np.testing.assert_allclose(forward.log_softmax(z), reference_log_softmax(z), atol=1e-12)
    p = forward.softmax(z)
    assert p.dtype == np.float64 and np.all(np.isfinite(p))
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(p, np.exp(reference_log_softmax(z)), atol=1e-12)


# ---- products, gathers, BLAS threads -------------------------------------------------------------

def test_one_hot_rows_and_their_gradient():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((9, 6)).astype(np.float32)
    rows = rng.integers(0, 9, 20).astype(np.int32)
    out = np.empty((20, 6), np.float32)
    linalg.one_hot_rows(w, rows, out)
    np.testing.assert_array_equal(out, w[rows])
    dz = rng.standard_normal((20, 6)).astype(np.float32)
    dw = np.zeros_like(w)
    linalg.scatter_add_rows(dw, rows, dz)
    ref = np.zeros_like(w)
    np.add.at(ref, rows, dz)
    np.testing.assert_allclose(dw, ref, rtol=1e-6)


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 5, 7), (25, 300, 64), (8, 600, 13)]
                         + [(rows, 37, 67) for rows in range(1, 11)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_nt_matches_numpy(shape, dtype):
    """Every count of rows left over from the blocks of 4, and ragged column blocks."""
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


@pytest.mark.parametrize("tasks", [1, 2])
def test_fanned_out_tasks_run_blas_on_one_thread_even_alone(tasks):
    # a share's products must round alike wherever it runs: alone, beside others, or as a rank
    if linalg._blas_thread_functions() is None:
        pytest.skip("Numba's BLAS is not an OpenBLAS reachable here")
    get, _ = linalg._blas_thread_functions()
    with linalg.blas_threads(2):
        assert fan_out([get] * tasks) == [1] * tasks
        assert get() == 2


def test_a_fanned_out_task_may_fan_out_again():
    # the second task runs on a pool thread while the caller holds the BLAS setting: its own
    # fan_out must not wait for that hold (a deadlock, so it runs in a process that can be ended)
    if linalg._blas_thread_functions() is None:
        pytest.skip("Numba's BLAS is not an OpenBLAS reachable here: there is no hold to wait for")
    code = ("from charlm.network.parallel import fan_out; "
            "print(fan_out([lambda: 1, lambda: fan_out([lambda: 2])[0]]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "[1, 2]", done.stderr


@pytest.mark.parametrize("n,min_share,threads,expected",
                         [(0, 1, 4, 1), (3, 1, 4, 3), (100, 1, 4, 4), (40, 16, 4, 2), (15, 16, 4, 1),
                          (64, 16, 4, 4), (1000, 64, 2, 2)])
def test_a_job_gets_a_thread_per_min_share_items_up_to_its_threads(n, min_share, threads, expected):
    from charlm.network import parallel
    assert parallel.shares(n, min_share, threads) == expected


def test_shares_reads_the_cores_this_process_has(monkeypatch):
    from charlm.network import parallel
    monkeypatch.setenv("CHARLM_THREADS", "3")
    assert parallel.cores() == 3 and parallel.shares(1000) == 3 and parallel.shares(1000, 500) == 2


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
