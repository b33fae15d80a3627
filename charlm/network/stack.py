"""The training pass of the recurrent language model: its forward and backward passes, and the
initialisation of its parameters (their names and shapes: ``charlm.network.shapes``).

Plain numpy over the Numba kernels. The time loops live in ``kernels.recurrent``; everything that
can be done for all time steps at once is done here as one matrix product: the input projections
``x W_x`` (a row gather for layer 0, whose input is one-hot), the output layer, and every weight
gradient (``dW = X^T dZ`` over the T*B rows of a batch).

The sequences of a batch are independent until their gradients are summed, so a batch is split
into one shard of sequences per core, each run by its own thread over its own buffers with
single-threaded BLAS (the kernels release the GIL), and the shards' gradients are added at the end.
On two cores this beats letting OpenBLAS split each product: the recurrent products are small
((B, H) by (H, G*H), one per step), so its threads spend much of their time handing work over and
spinning, and the element-wise cell updates between them would run on one core. A pass over one
sequence (dynamic evaluation) has no batch to split: its stack splits each step's hidden units
among the cores instead (:meth:`Stack.split_units`).

Shapes: ``x``, ``y`` are (T, B) token ids (time-major; a target of -1 is padding). The recurrent
state is one array (L, S, B, H): L layers, S = 2 for the LSTM (h, c) and 1 otherwise.
Training memory: per layer and shard, T*b*(G*H + 3*H) floats for b sequences (gates, then dz in
their place; hs and cs or r*h; the dropout output), plus T*b*G*H for the GRU's dz, T*b*(2V + H) for
the output layer, and one copy of the parameters per shard beyond the first for its gradient.
"""
import functools
import math
import zlib
from typing import NamedTuple

import numpy as np

from .celltypes import cell as cell_named
from ..kernels import dropout as dropout_kernels
from ..kernels import loss as loss_kernels
from ..kernels import recurrent
from ..kernels.barrier import SYNC_STRIDE, release
from ..kernels.linalg import matmul
from . import inputs
from .parallel import fan_out, shares, split
from .shapes import FlatArrays, parameter_shapes  # noqa: F401  (the names callers import from here)


def init_for_seed(params, cell, seed):
    """Initialise in place as ``charlm train --seed seed`` does, from the seed's own stream of
    the initial weights (the data's streams are other entries of the seed: charlm.text.corpus)."""
    init_parameters(params, cell, np.random.default_rng([seed, 1]))


def init_parameters(params, cell, rng):
    """Initialise in place.

    Recurrent blocks orthogonal; input and output weights uniform with variance 1/fan-in, except
    layer 0's rows (one per character: an embedding folded into the gates), which get variance 1,
    like the pre-activations of an embedding-fed layer: with variance 1/H there, the characters'
    rows start too alike, and Adam takes hundreds of steps to tell them apart (docs/design.md,
    Initialisation). Biases zero except the gate that decides what to keep: the LSTM forget
    gate starts at +1 and the GRU update gate at -1, so that both start by carrying their state
    forward (Jozefowicz et al. 2015): the cell table (``charlm.network.celltypes``) says which."""
    dtype = params.flat.dtype
    for name, shape in params.shapes:
        w = params[name]
        if name.endswith(".b"):
            if not name.startswith("out."):      # a recurrent layer's, in any stack
                cell_named(cell).initial_biases(w, params[name[:-1] + "W_h"].shape[0])
            else:
                w[:] = 0.0
        elif name.endswith("W_h"):
            hidden = shape[0]
            for k in range(shape[1] // hidden):
                q, r = np.linalg.qr(rng.standard_normal((hidden, hidden)))
                w[:, k * hidden:(k + 1) * hidden] = (q * np.sign(np.diag(r))).astype(dtype)
        else:
            bound = np.sqrt(3.0 / (1 if name.endswith("layers.0.W_x") else shape[0]))
            w[:] = rng.uniform(-bound, bound, shape).astype(dtype)


class Dropout(NamedTuple):
    """How a training step drops units and weights (all off by default):

    - ``rate``: each layer's outputs, on the way to the layer above and the output layer
      (inverted dropout: a kept unit is scaled by 1 / (1 - rate));
    - ``locked``: one mask per sequence of the batch for all of its steps (variational dropout,
      Gal and Ghahramani 2016) instead of a new mask at every step;
    - ``weight``: DropConnect on the recurrent weights W_h (Merity et al. 2018's weight drop):
      one mask per step of training for the whole batch, so the same dropped connections hold
      along the sequence, which is what regularises the recurrence itself.
    """
    rate: float = 0.0
    locked: bool = False
    weight: float = 0.0

    @classmethod
    def of(cls, config):
        """The dropout a training run's config asks for."""
        return cls(config.dropout, config.locked_dropout, config.weight_drop)


class _Weights:
    """One layer's weights as the kernels take them, with W_h^T for the forward time loop (None
    for a :class:`Stack` whose forward reads W_h itself: see ``Stack.split_units``). ``name`` is
    W_h's name in the parameters; ``mask`` the weight-drop mask applied to it, if any."""

    def __init__(self, params, layer, prefix="layers", transposed=True):
        self.w_x, self.w_h, self.b = (params[f"{prefix}.{layer}.{k}"] for k in ("W_x", "W_h", "b"))
        self.w_ht = np.ascontiguousarray(self.w_h.T) if transposed else None
        self.name, self.mask = f"{prefix}.{layer}.W_h", None

    def drop_connections(self, rate, key):
        """Use W_h * M for this step: M (H, G H) is 0 or 1 / (1 - rate), from ``key`` and the
        layer's name alone, so every thread and process of a step uses the same mask. The
        gradient of the dropped weights reaches W_h through the same M (:meth:`mask_gradient`)."""
        H, width = self.w_h.shape
        mask = np.empty((1, H, 1, width), self.w_h.dtype)
        fill_dropout_masks(key, (zlib.crc32(self.name.encode()),), rate, mask)
        self.mask = mask[0, :, 0]
        self.w_h = self.w_h * self.mask
        if self.w_ht is not None:
            self.w_ht = np.ascontiguousarray(self.w_h.T)

    def mask_gradient(self, grads):
        """dL/dW_h = dL/d(W_h * M) * M."""
        if self.mask is not None:
            gradient = grads[self.name]
            gradient *= self.mask


def stack_weights(params, num_layers, prefix="layers", transposed=True):
    """The weights of the stack whose layers are stored as ``{prefix}.{l}.*``, bottom first.
    With ``transposed=False`` they are views of params alone, which follow its updates."""
    return [_Weights(params, layer, prefix, transposed) for layer in range(num_layers)]


PRODUCT_PARTS = 2       # row blocks of each product of a Stack with split units (Stack._matmul)


class Stack:
    """A stack of recurrent layers over b sequences of T steps, on one thread (or with its hidden
    units split among several: :meth:`split_units`): its forward pass, which returns the top
    layer's outputs, and its backward pass, which takes the gradient reaching them. What sits on
    top (a softmax over the vocabulary, or two stacks' outputs side by side) is the caller's. The
    buffers are kept from batch to batch while (T, b) stays, so that a training step allocates
    almost nothing."""

    def __init__(self, cell, num_layers, hidden_size, dtype, T, b):
        L, H = num_layers, hidden_size
        self.cell, self.hidden_size = cell, hidden_size
        self.forward_kernel = cell.kernel(recurrent, "forward")
        self.backward_kernel = cell.kernel(recurrent, "backward")
        self.workers = 0       # see split_units
        self.gates = np.empty((L, T, b, cell.gates * H), dtype)  # zx, then the activated gates
        self.hs = np.empty((L, T + 1, b, H), dtype)              # h_0 .. h_T
        # the forward kernels' aux: c_0 .. c_T for the LSTM, r * h_{t-1} for the GRU
        aux_steps = T + 1 if cell.num_states == 2 else T if cell.reset_gated else 0
        self.aux = np.empty((L, aux_steps, b, H), dtype)
        self.dropped = None                                      # (L, T, b, H) outputs after dropout
        self.dz = None if cell.dz_in_gates else np.empty((T, b, cell.gates * H), dtype)
        self.dh = np.empty((T, b, H), dtype)   # gradient reaching a layer's outputs: the caller
                                               # writes the top layer's before ``backward``
        # the gradient carried along the recurrence (dL/dh_t, the LSTM's dL/dc_t): zero past the
        # last step (truncated BPTT); at h_0 (c_0) after the backward kernel, which training drops
        self.dh_carry = np.empty((b, H), dtype)
        self.dc_carry = np.empty((b, H), dtype)

    def forward(self, weights, x, state, masks):
        """The top layer's outputs (T, b, H), after dropout where masks (L, T, b, H) are given, for
        ids x (T, b) from state (L, S, b, H)."""
        T, b = x.shape
        inp = None
        for layer, w in enumerate(weights):
            gates, hs = self.gates[layer], self.hs[layer]
            if layer == 0:
                inputs.gather(w.w_x, x.reshape(-1), gates.reshape(T * b, -1))  # one-hot input(s)
            else:
                self._matmul(inp.reshape(T * b, -1), w.w_x, gates.reshape(T * b, -1))
            hs[0] = state[layer, 0]
            if state.shape[1] == 2:
                self.aux[layer, 0] = state[layer, 1]
            if self.workers:
                self._on_workers(self.forward_split, gates, w.b, w.w_h, hs, self.aux[layer])
            else:
                self.forward_kernel(gates, w.b, w.w_ht, hs, self.aux[layer], False)
            inp = hs[1:]
            if masks is not None:
                if self.dropped is None:
                    self.dropped = np.empty((len(weights),) + inp.shape, inp.dtype)
                inp = np.multiply(inp, masks[layer], out=self.dropped[layer])
        return inp

    def split_units(self, workers):
        """Run the time loops with the hidden units split among ``workers`` threads that meet at
        every step (``kernels.recurrent``'s split kernels; one worker runs them too): for a pass
        over one sequence, or a few, whose steps are matrix-vector products. The forward then
        reads W_h as stored, so the weights may change between calls with nothing to transpose
        (dynamic evaluation). A unit's sums do not depend on the split: any number of workers
        gives the same bits."""
        self.workers = workers
        self.forward_split = self.cell.kernel(recurrent, "forward_split")
        self.backward_split = self.cell.kernel(recurrent, "backward_split")
        self._unit_edges = split(self.hidden_size, workers)
        self._sync = np.zeros(workers * SYNC_STRIDE, np.int64)
        self._phase = 0        # barriers passed: the workers' counters only increase

    def _matmul(self, a, b, out):
        """out = a @ b: one BLAS call, or with split units PRODUCT_PARTS calls on row blocks of a
        and out, on the workers. The blocks are the same whatever the number of workers, so
        the bits are too."""
        if not self.workers:
            matmul(a, b, out)
            return
        a = np.ascontiguousarray(a)          # a transposed operand: its row blocks contiguous
        edges = split(a.shape[0], PRODUCT_PARTS)
        blocks = [functools.partial(matmul, a[lo:hi], b, out[lo:hi])
                  for lo, hi in zip(edges[:-1], edges[1:])]
        if self.workers > 1:
            fan_out(blocks)
        else:
            for block in blocks:
                block()

    def _on_workers(self, kernel, *args):
        """kernel(*args, lo, hi, sync, worker, workers, phase) on every worker at once. If one
        fails, the others are let through the barriers; the count starts again after it."""
        edges = self._unit_edges
        tasks = [functools.partial(kernel, *args, edges[k], edges[k + 1], self._sync, k,
                                   self.workers, self._phase) for k in range(self.workers)]
        try:
            self._phase = fan_out(tasks, on_failure=functools.partial(release, self._sync))[0]
        except BaseException:
            self._sync[:] = 0          # every worker has ended
            self._phase = 0
            raise

    def final_state(self, out):
        """Write the state after the last step into out (L, S, b, H)."""
        out[:, 0] = self.hs[:, -1]
        if out.shape[1] == 2:
            out[:, 1] = self.aux[:, -1]

    def backward(self, weights, x, masks, grads, prefix="layers"):
        """Backpropagate ``self.dh`` (T, b, H), the gradient reaching the outputs that
        :meth:`forward` returned, through the stack; writes the weight gradients into
        ``grads["{prefix}.{l}.*"]``. Uses self.dh as scratch."""
        T, b = x.shape
        H = self.hidden_size
        dh = self.dh.reshape(T * b, H)
        for layer in reversed(range(len(weights))):
            w, hs, gates = weights[layer], self.hs[layer], self.gates[layer]
            if masks is not None:
                self.dh *= masks[layer]
            dz = gates if self.dz is None else self.dz
            self.dh_carry[:] = 0.0
            self.dc_carry[:] = 0.0
            args = (self.dh, w.w_h, hs, self.aux[layer], gates, dz, self.dh_carry, self.dc_carry)
            if self.workers:
                self._on_workers(self.backward_split, *args)
            else:
                self.backward_kernel(*args)
            dz = dz.reshape(T * b, -1)
            h_prev = hs[:-1].reshape(T * b, H)
            dw_h = grads[f"{prefix}.{layer}.W_h"]
            if self.cell.reset_gated:
                # the r and u blocks multiply h_{t-1}, the candidate's block r * h_{t-1}
                dw_h[:, :2 * H] = product(h_prev.T, np.ascontiguousarray(dz[:, :2 * H]),
                                          self._matmul)
                dw_h[:, 2 * H:] = product(self.aux[layer].reshape(T * b, H).T,
                                          np.ascontiguousarray(dz[:, 2 * H:]), self._matmul)
            else:
                self._matmul(h_prev.T, dz, dw_h)
            dz.sum(axis=0, out=grads[f"{prefix}.{layer}.b"])
            dw_x = grads[f"{prefix}.{layer}.W_x"]
            if layer == 0:
                dw_x[:] = 0.0
                inputs.scatter(dw_x, x.reshape(-1), dz)
            else:
                below = self.dropped[layer - 1] if masks is not None else self.hs[layer - 1, 1:]
                self._matmul(below.reshape(T * b, H).T, dz, dw_x)
                self._matmul(dz, w.w_x.T, dh)


class _Shard:
    """One thread's share of a batch, b sequences of T steps: its stack and output buffers."""

    def __init__(self, net, T, b):
        dt = net.params.flat.dtype
        self.net = net
        self.stack = Stack(net.cell, net.num_layers, net.hidden_size, dt, T, b)
        self.logits = np.empty((T * b, net.vocab_size), dt)
        self.dlogits = np.empty((T * b, net.vocab_size), dt)

    def train(self, weights, x, y, state, masks, scale, grads, new_state):
        """Forward and backward over this shard; writes the gradient of scale * (summed loss) into
        grads and the final state into new_state. Returns the summed loss."""
        p = self.net.params
        x = np.ascontiguousarray(x)
        T, b = x.shape
        H = self.net.hidden_size
        top = self.stack.forward(weights, x, state, masks)
        matmul(top.reshape(T * b, -1), p["out.W"], self.logits)   # logits without the bias
        self.stack.final_state(new_state)
        loss = loss_kernels.softmax_cross_entropy(self.logits, p["out.b"], y.reshape(-1), scale,
                                                  self.dlogits, grads["out.b"])
        matmul(top.reshape(T * b, H).T, self.dlogits, grads["out.W"])
        matmul(self.dlogits, p["out.W"].T, self.stack.dh.reshape(T * b, H))
        self.stack.backward(weights, x, masks, grads)
        return loss


WEIGHT_DROP_KEY = 0x5745494748544452     # a key word of its own for weight drop's masks


def fill_dropout_masks(key, columns, rate, out):
    """out (L, T, b, H) = masks of 0 or 1 / (1 - rate) from the streams of (key, column) of
    :mod:`kernels.dropout`, one for each of ``columns`` (global indices)."""
    threshold = math.ceil(rate * 2 ** dropout_kernels.UNIFORM_BITS)   # u >= rate, in steps
    dropout_kernels.fill_masks(np.array(key, np.uint64), np.array(columns, np.int64), threshold,
                               out.dtype.type(1.0 / (1.0 - rate)), out)


def layer_weights(weights):
    """Every layer's :class:`_Weights` in the weights of a step: a stack's list, or the lists of
    several stacks (a bidirectional network's pair)."""
    for w in weights:
        if isinstance(w, _Weights):
            yield w
        else:
            yield from w


def product(a, b, multiply=matmul):
    """a @ b in a new array, through :func:`kernels.linalg.matmul` (one BLAS for everything) or
    another ``multiply(a, b, out)``."""
    out = np.empty((a.shape[0], b.shape[1]), np.result_type(a, b))
    multiply(a, b, out)
    return out


class Network:
    """A stack of recurrent layers and a softmax output, over a :class:`FlatArrays` of weights;
    ``cell`` is the cell's record in the cell table. This is the training pass (forward and
    backward); the no-grad forward pass is ``charlm.network.engine``."""

    shard_type = _Shard        # what runs one thread's share of a batch

    def __init__(self, cell, vocab_size, hidden_size, num_layers, params):
        self.cell = cell_named(cell) if isinstance(cell, str) else cell
        self.vocab_size, self.hidden_size, self.num_layers = vocab_size, hidden_size, num_layers
        self.params = params
        self._shards = {}          # (T, B) -> [(lo, hi, _Shard)], for the latest two shapes
        self._grads = []           # gradient buffers of the shards after the first

    def zero_state(self, batch_size):
        """The initial recurrent state (L, S, B, H) of batch_size sequences."""
        return np.zeros((self.num_layers, self.cell.num_states, batch_size, self.hidden_size),
                        self.params.flat.dtype)

    def _split(self, T, B):
        """The shards for a (T, B) batch: one per core, as equal as can be."""
        key = (T, B)
        if key not in self._shards:
            if len(self._shards) >= 2:
                del self._shards[next(iter(self._shards))]
            edges = split(B, shares(B))
            self._shards[key] = [(lo, hi, self.shard_type(self, T, hi - lo))
                                 for lo, hi in zip(edges[:-1], edges[1:])]
        return self._shards[key]

    def _weights(self):
        return stack_weights(self.params, self.num_layers)

    def dropout_masks(self, dropout, key, columns, T):
        """Inverted-dropout masks (L, T, b, H), 0 or 1 / (1 - rate), for the batch columns
        ``columns`` (global indices); (L, 1, b, H), one mask for every step, when the
        :class:`Dropout` is locked. Each column's masks come from its own stream, a function of
        ``key`` (the run's seed and the step) and the column (:mod:`kernels.dropout`): they do not
        depend on how the batch is split among threads or processes."""
        steps = 1 if dropout.locked else T
        masks = np.empty((self.num_layers, steps, len(columns), self.hidden_size),
                         self.params.flat.dtype)
        fill_dropout_masks(key, columns, dropout.rate, masks)
        return masks

    def _dropped_weights(self, dropout, key):
        """The stack's weights for a training step, the recurrent ones with weight drop applied
        (a list of every layer's :class:`_Weights`, with the nesting of :meth:`_weights`)."""
        weights = self._weights()
        if dropout.weight > 0.0:
            for w in layer_weights(weights):
                w.drop_connections(dropout.weight, (*key, WEIGHT_DROP_KEY))
        return weights

    def target_count(self, y):
        """How many of the targets y (T, B) the loss averages over: those that are not padding."""
        return int(np.count_nonzero(y >= 0))

    def loss_and_gradients(self, x, y, state, grads, dropout=Dropout(), mask_key=(0,),
                           first_column=0, count=None):
        """One training batch: returns (mean loss in nats, target count, new state) and writes
        the gradients of the mean loss into grads. ``dropout`` (a :class:`Dropout`, its masks
        from ``mask_key``) applies to each layer's output and, with weight drop, to the
        recurrent weights.

        For a share of a larger batch (data-parallel training), ``first_column`` is the global
        index of x's first column and ``count`` the whole batch's number of targets, which the
        mean divides by; the loss returned is then this share's part of the mean."""
        T, B = x.shape
        shards = self._split(T, B)
        weights = self._dropped_weights(dropout, mask_key)
        count = self.target_count(y) if count is None else count
        scale = 1.0 / count if count else 0.0
        while len(self._grads) < len(shards) - 1:
            self._grads.append(grads.like())
        new_state = np.empty_like(state)

        def shard_task(s, lo, hi, g):
            # each thread makes its own columns' masks (the kernel releases the GIL)
            columns = range(first_column + lo, first_column + hi)
            masks = self.dropout_masks(dropout, mask_key, columns, T) if dropout.rate > 0.0 else None
            loss = s.train(weights, x[:, lo:hi], y[:, lo:hi], state[:, :, lo:hi], masks, scale, g,
                           new_state[:, :, lo:hi])
            for w in layer_weights(weights):      # each share's before the sum, as ranks do
                w.mask_gradient(g)
            return loss

        gradients = [grads] + self._grads
        losses = fan_out([functools.partial(shard_task, s, lo, hi, gradients[k])
                          for k, (lo, hi, s) in enumerate(shards)])
        for g in self._grads[:len(shards) - 1]:
            grads.flat += g.flat
        # each shard's part of the mean, then their sum, as a data-parallel run sums its ranks'
        # parts: two shards on two threads or in two processes give the same bits
        return sum(loss * scale for loss in losses), count, new_state
