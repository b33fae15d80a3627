"""Compiling (or loading from Numba's cache) every kernel a command needs, up front, so that the
command line can show a notice while it happens and the first step is not mysteriously slow."""
import numpy as np

from .model import FlatArrays, Network, init_parameters, parameter_shapes
from .kernels.optim import squared_norm
from .scorer import stream_log_prob
from .train import Optimizer


def warm_up(cell, mode="stream", dtype=np.float32):
    """Run a tiny training step and the evaluation of a 2-layer network of this cell. Stream mode
    validates with the scoring kernels, which take about 7 s more to compile."""
    V, H, L, T, B = 5, 4, 2, 3, 2
    params = FlatArrays(parameter_shapes(cell, V, H, L), dtype=dtype)
    init_parameters(params, cell, np.random.default_rng(0))
    grads = params.like()
    net = Network(cell, V, H, L, params)
    x = np.zeros((T, B), np.int32)
    y = np.ones((T, B), np.int32)
    rng = np.random.default_rng(0)
    net.loss_and_gradients(x, y, net.zero_state(B), grads, 0.1, rng)
    net.log_probs(x, y, net.zero_state(B))
    if mode == "stream":
        stream_log_prob(net, y[:, 0])
    squared_norm(grads.flat)
    for name in ("adam", "rmsprop", "sgd"):
        Optimizer(name, params.flat.size).step(params.flat, grads.flat, 1e-3, 1.0, 1)
