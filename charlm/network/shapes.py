"""The weights of a network: their names and shapes in checkpoint order (docs/checkpoint-format.md),
and :class:`FlatArrays`, the named views into one flat buffer that hold them.

What the checkpoint reader needs to lay out a file's arrays, without the networks and their
kernels. Imports: numpy and ``charlm.network.celltypes`` only.
"""
import numpy as np

from .celltypes import cell as cell_named

BACKWARD = "backward.layers"    # a bidirectional network's backward stack: its key prefix


def parameter_shapes(cell, vocab_size, hidden_size, num_layers):
    """Names and shapes of every weight of a left-to-right network, in checkpoint order."""
    width = cell_named(cell).gates * hidden_size
    shapes = []
    for layer in range(num_layers):
        d_in = vocab_size if layer == 0 else hidden_size
        shapes += [(f"layers.{layer}.W_x", (d_in, width)),
                   (f"layers.{layer}.W_h", (hidden_size, width)),
                   (f"layers.{layer}.b", (width,))]
    return shapes + [("out.W", (hidden_size, vocab_size)), ("out.b", (vocab_size,))]


def bidirectional_shapes(cell, vocab_size, hidden_size, num_layers):
    """Names and shapes of every weight of the bidirectional network, in checkpoint order: the
    forward stack's layers, the backward stack's (the same shapes under ``backward.layers``),
    then ``out.W`` (2H, V), whose rows 0..H-1 read the forward stack, and ``out.b``."""
    forward = parameter_shapes(cell, vocab_size, hidden_size, num_layers)[:-2]
    backward = [(BACKWARD + name[len("layers"):], shape) for name, shape in forward]
    return forward + backward + [("out.W", (2 * hidden_size, vocab_size)), ("out.b", (vocab_size,))]


def shapes_for(config, vocab_size):
    """The weights of the network that config describes, left-to-right or bidirectional."""
    shapes = bidirectional_shapes if config.bidirectional else parameter_shapes
    return shapes(config.cell, vocab_size, config.hidden_size, config.num_layers)


class FlatArrays:
    """Named arrays that are views into one flat buffer, so that the optimizer, the gradient norm
    and the checkpoint see a single array."""

    def __init__(self, shapes, flat=None, dtype=np.float32):
        self.shapes = list(shapes)
        size = sum(int(np.prod(s)) for _, s in self.shapes)
        self.flat = np.zeros(size, dtype) if flat is None else flat
        if self.flat.shape != (size,):
            raise ValueError(f"flat buffer has {self.flat.size} values, the shapes need {size}")
        self.views = {}
        offset = 0
        for name, shape in self.shapes:
            n = int(np.prod(shape))
            self.views[name] = self.flat[offset:offset + n].reshape(shape)
            offset += n

    def __getitem__(self, name):
        return self.views[name]

    def like(self):
        return FlatArrays(self.shapes, np.zeros_like(self.flat))

    def matrices(self):
        """The weight matrices (every array but the biases), which weight decay shrinks."""
        return [self.views[name] for name, shape in self.shapes if len(shape) == 2]
