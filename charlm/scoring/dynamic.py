"""Dynamic evaluation (Krause et al. 2018): scoring a text while the model adapts its weights to it.

The text is read in order, in segments of ``segment`` tokens. For each segment k:

1. the segment is scored with the current weights w_k: its log-probabilities are what the figure
   counts, so every token is predicted before the model has learnt from it;
2. the same pass's backward gives g_k, the gradient of the segment's mean loss at w_k;
3. the weights take one step (``kernels.adapt``), RMSprop-like, then are pulled back toward the
   trained weights w_0:

       ms = beta ms + (1 - beta) g_k^2,   w <- w - lr g_k / (sqrt(ms / (1 - beta^k)) + eps),
       w <- w + decay (w_0 - w)

   The bias correction 1 / (1 - beta^k) makes the first steps lr-sized rather than lr/sqrt(1-beta).

The recurrent state is carried from segment to segment (stream mode), computed with the weights
that scored it. In lines mode every line is an example of its own, from the zero state, as in
static scoring; a segment is the next lines in file order, at least ``segment`` tokens of them
(one line at least), scored side by side as one batch and adapted on together.

The pass is training's own (``charlm.network.stack``): one shard of the training network whose
time loops split the hidden units between the cores (``Stack.split_units``: two workers meet at a
barrier every step, each reading half of W_h), and whose large products over the segment (the
layers' input products and weight gradients) run as two row blocks, one per core. Steps 1 and 2
are that shard's forward and backward; step 3 runs on every core, over disjoint ranges of the flat
weights. No sum depends on the split (each unit's and each block's run in one order), and each
weight's update depends on its own entries alone, so a figure does not depend on the number of
threads.

With lr = 0 the weights never move, and the figure is static scoring's sequential one
(``score_file(exact=True)``), up to float32 rounding in a different order of the same sums
(training's recurrent products and loss against the no-grad pass's).

The model's weights are adapted in place while a text is read and restored when it ends.

Cost per token, beyond the forward pass: the backward (about twice the forward), and per segment
one pass over the weights (reading g, ms, w, w_0; writing ms, w). At batch 1 the recurrent
products are matrix-vector products that read all of W_h from cache or memory at every step
(4 MiB a layer for a 512-unit LSTM), twice (forward and backward), and that bandwidth bounds the
time loops; the weight gradients, products over the segment's T steps, are most of the rest
(``docs/dynamic-evaluation.md``, Speed).
"""
import numpy as np

from ..errors import TrainingDiverged, UsageError
from ..kernels.adapt import dynamic_update
from ..network.parallel import blas_for, fan_out, shares, split, unit_workers
from ..network.stack import stack_weights
from ..text.vocab import EOS_ID
from .options import Settings, settings_from  # noqa: F401  (the names callers import from here)

UPDATE_SHARE = 1 << 16      # fewest weights worth a thread of their own in the update


class Adapter:
    """Scores segments with the current weights and adapts the weights on each; the trained
    weights come back on :meth:`close` (or at the end of a ``with`` block)."""

    def __init__(self, network, settings):
        if network.params.flat.dtype != np.float32:
            raise UsageError("dynamic evaluation runs float32 weights")
        self.network, self.settings = network, settings
        self.params = network.params
        self.trained = self.params.flat.copy()
        self.ms = np.zeros_like(self.trained)
        self.grads = self.params.like()
        self.weights = stack_weights(self.params, network.num_layers, transposed=False)
        self.steps = 0
        self.workers = unit_workers(network.hidden_size)
        self._shards = {}
        n = self.trained.size
        self._ranges = split(n, shares(n, UPDATE_SHARE))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        """Put the trained weights back."""
        self.params.flat[:] = self.trained

    def _shard(self, T, b):
        key = (T, b)
        if key not in self._shards:
            if len(self._shards) >= 4:
                del self._shards[next(iter(self._shards))]
            shard = self.network.shard_type(self.network, T, b)
            shard.stack.split_units(self.workers)
            self._shards[key] = shard
        return self._shards[key]

    def step(self, x, y, state):
        """Score targets y (T, b) of inputs x from state (L, S, b, H) with the current weights,
        then adapt the weights on them. Returns (log-probability in nats, targets, new state)."""
        T, b = x.shape
        count = int(np.count_nonzero(y >= 0))
        new_state = np.empty_like(state)
        if count == 0:
            return 0.0, 0, new_state
        with blas_for(1):
            loss = self._shard(T, b).train(self.weights, x, y, state, None, 1.0 / count,
                                           self.grads, new_state)
        if not np.isfinite(loss):
            raise TrainingDiverged(f"dynamic evaluation diverged at segment {self.steps + 1} (the "
                                   "loss is not finite): use a smaller learning rate")
        self.steps += 1
        self._update()
        return -float(loss), count, new_state

    def _update(self):
        s = self.settings
        correction = 1.0 / (1.0 - s.rms_decay ** self.steps) if s.rms_decay > 0 else 1.0
        w, g, ms, w0 = self.params.flat, self.grads.flat, self.ms, self.trained
        edges = self._ranges
        fan_out([lambda k=slice(lo, hi): dynamic_update(w[k], g[k], ms[k], w0[k], s.lr,
                                                        s.rms_decay, correction, s.eps, s.decay)
                 for lo, hi in zip(edges[:-1], edges[1:])])


# ---- texts and files -----------------------------------------------------------------------------

def stream_segments(ids, segment):
    """(x, y) pairs of (T, 1) int32 views that read ids' = ids[0], ids[1], .. in segments of
    ``segment`` steps, predicting each next id: the caller puts <EOS> first."""
    for start in range(0, len(ids) - 1, segment):
        stop = min(start + segment, len(ids) - 1)
        yield ids[start:stop].reshape(-1, 1), ids[start + 1:stop + 1].reshape(-1, 1)


def adapt_sequence(adapter, ids, state=None):
    """Run ids' = <EOS>-led ids through the adapter in segments, state carried; returns
    (log-probability, targets, final state)."""
    state = adapter.network.zero_state(1) if state is None else state
    log_prob, tokens = 0.0, 0
    for x, y in stream_segments(ids, adapter.settings.segment):
        lp, n, state = adapter.step(x, y, state)
        log_prob += lp
        tokens += n
    return log_prob, tokens, state


def adapt_lines(adapter, lines_ids, pad):
    """Score lines (token ids, each an example from the zero state) in segments of consecutive
    lines, adapting after each; ``pad`` lays a segment out as (x, y). Returns (log-probability,
    targets)."""
    log_prob, tokens, batch, size = 0.0, 0, [], 0
    for ids in lines_ids:
        batch.append(ids)
        size += len(ids) + 1
        if size >= adapter.settings.segment:
            lp, n = _lines_segment(adapter, batch, pad)
            log_prob, tokens, batch, size = log_prob + lp, tokens + n, [], 0
    if batch:
        lp, n = _lines_segment(adapter, batch, pad)
        log_prob, tokens = log_prob + lp, tokens + n
    return log_prob, tokens


def _lines_segment(adapter, batch, pad):
    x, y = pad(batch)
    lp, n, _ = adapter.step(x, y, adapter.network.zero_state(len(batch)))
    return lp, n


class StreamReader:
    """Token ids of a text that arrives in pieces, handed out in segments: the state of a
    stream-mode file's dynamic evaluation between two pieces."""

    def __init__(self, adapter):
        self.adapter = adapter
        self.pending = np.array([EOS_ID], np.int32)   # ids' not yet read as inputs
        self.state = adapter.network.zero_state(1)
        self.log_prob, self.tokens = 0.0, 0

    def feed(self, ids, final=False):
        """Add ids; score and adapt on every whole segment (and the rest when ``final``)."""
        S = self.adapter.settings.segment
        pending = np.concatenate([self.pending, ids.astype(np.int32)])
        whole = (len(pending) - 1) // S * S if not final else len(pending) - 1
        if whole > 0:
            lp, n, self.state = adapt_sequence(self.adapter, pending[:whole + 1], self.state)
            self.log_prob += lp
            self.tokens += n
        self.pending = pending[whole:]


def warm_up(network):
    """Compile (or load from Numba's cache) what dynamic evaluation runs, on a 2-layer network of
    network's cell with 4 units and 3 tokens."""
    from ..network.stack import FlatArrays, Network, parameter_shapes
    cell = network.cell
    params = FlatArrays(parameter_shapes(cell.name, 3, 4, 2))
    tiny = Network(cell, 3, 4, 2, params)
    with Adapter(tiny, Settings(segment=2)) as adapter:
        adapt_sequence(adapter, np.zeros(4, np.int32))
