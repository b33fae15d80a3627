"""Compiling (or loading from Numba's cache) every kernel a command needs, up front, so that the
command line can show a notice while it happens and the first step is not mysteriously slow.

Training and the no-grad pass that validation runs share their time-loop kernels
(``kernels.recurrent``): a first training run compiles them once, with the training pass, and
validation adds only its loss kernel (``benchmarks/bench_compile.py`` measures a first run's
compile time).
"""
import numpy as np

from ..config import EMA_DECAY, Config
from ..network.engine import Engine
from ..kernels.optim import squared_norm
from ..network.stack import Dropout, FlatArrays, Network, init_parameters, parameter_shapes
from ..training.trainer import Optimizer


def tiny_network(cell, dtype=np.float32):
    """A 2-layer network of this cell with 5 tokens and 4 units: enough to run every kernel."""
    V, H, L = 5, 4, 2
    params = FlatArrays(parameter_shapes(cell, V, H, L), dtype=dtype)
    init_parameters(params, cell, np.random.default_rng(0))
    return Network(cell, V, H, L, params)


def warm_up_forward(network):
    """The no-grad forward pass (scoring, validation) on a one-step input."""
    ids = np.zeros((1, 1), np.int32)
    engine = Engine(network)
    engine.log_probs(ids, ids, engine.zero_state(1))


def warm_up_training(cell, optimizer="adam", dtype=np.float32):
    """A training step and validation of a tiny network of this cell, and the optimizer's update."""
    net = tiny_network(cell, dtype)
    T, B = 3, 2
    x = np.zeros((T, B), np.int32)
    y = np.ones((T, B), np.int32)
    grads = net.params.like()
    net.loss_and_gradients(x, y, net.zero_state(B), grads, Dropout(0.1))
    squared_norm(grads.flat)
    weights = net.params.flat
    Optimizer(Config(optimizer=optimizer, ema_decay=EMA_DECAY), weights).step(
        weights, grads.flat, 1e-3, 1.0, 1)
    warm_up_forward(net)


def warm_up_sampling(network, num=1):
    """The generation kernel in each weight layout that ``num`` samples side by side read: a call
    that runs no step."""
    from ..generation.options import SamplingOptions
    from ..generation.sampler import Batch, Generation
    run = Generation(network, 1, workers=1) if num == 1 else Batch(network, num)
    run.step(np.zeros(0, np.int64), np.zeros((0, num)), SamplingOptions(),
             np.ones((2, network.vocab_size), np.bool_))
