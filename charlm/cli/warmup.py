"""Compiling (or loading from Numba's cache) every kernel a command needs, up front, so that the
command line can show a notice while it happens and the first step is not mysteriously slow.

A first training run compiles two independent sets of kernels: the training pass's and the no-grad
forward pass's that validation runs (about 8 and 6 s on this machine). When the second set is not
in the cache yet, a second process compiles it into the cache on the other core meanwhile, and this
one then loads it from there.
"""
import os
import subprocess
import sys

import numpy as np

from ..network.celltypes import cell as cell_named
from ..config import Config
from ..network.engine import Engine
from ..kernels import inference
from ..kernels.optim import squared_norm
from ..network.stack import FlatArrays, Network, init_parameters, parameter_shapes
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
    forward_compiler = None
    if not _in_cache(cell_named(cell).kernel(inference, "steps")):
        forward_compiler = subprocess.Popen(
            [sys.executable, "-c", f"from charlm.cli.warmup import *; warm_up_forward(tiny_network({cell!r}))"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        net = tiny_network(cell, dtype)
        T, B = 3, 2
        x = np.zeros((T, B), np.int32)
        y = np.ones((T, B), np.int32)
        grads = net.params.like()
        net.loss_and_gradients(x, y, net.zero_state(B), grads, 0.1)
        squared_norm(grads.flat)
        Optimizer(Config(optimizer=optimizer), grads.flat.size).step(net.params.flat, grads.flat, 1e-3, 1.0, 1)
        if forward_compiler is not None:
            forward_compiler.wait()     # if it failed, the line below compiles here instead
    finally:
        if forward_compiler is not None and forward_compiler.poll() is None:
            forward_compiler.kill()     # interrupted: leave no compiler running behind
            forward_compiler.wait()
    warm_up_forward(net)


def _in_cache(kernel):
    """Whether Numba's on-disk cache holds an index for this kernel (an earlier run compiled it).
    Reads Numba's cache internals; where they differ, it answers True, and nothing runs ahead."""
    cache_file = getattr(getattr(kernel, "_cache", None), "_cache_file", None)
    index = getattr(cache_file, "_index_path", None)
    return index is None or os.path.exists(index)


def warm_up_sampling(network):
    """The generation kernel: a call that runs no step."""
    from ..generation.sampler import Generation
    Generation(network, 1, workers=1).step(np.zeros(0, np.int64), np.zeros((0, 1)), 1.0, 0, 1.0,
                                           np.ones((2, network.vocab_size), np.bool_), False)
