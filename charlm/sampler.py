"""Sampling text from a model: option checks, weight packing and the chunk loop around
:func:`charlm.kernels.sampling.generate`, where every step runs.

The generation starts from the zero state with ``<EOS>`` as the first input (as in training),
reads the prime, then draws one character per step and feeds it back. Python sees one call per
chunk of steps; a single sample's text is handed to ``on_text`` chunk by chunk, the first chunks
short so that text appears at once.
"""
import math
import os
import threading

import numpy as np

from .errors import UsageError
from .model import GATES
from .vocab import EOS_ID

DEFAULT_LENGTH = 200           # characters, when the length is the only stop
DEFAULT_EOS_CAP = 1000         # characters, when stopping at <EOS>: a cap for a model that rambles
MAX_NUM = 100_000
MAX_LENGTH = 10_000_000
FIRST_CHUNK = 16               # steps of the first kernel call when streaming; doubled up to
MAX_CHUNK = 1024               # this, so the text keeps flowing at a few chunks per 0.1 s
CHUNK_VALUES = 1 << 20         # steps x samples per call otherwise: bounds the per-call buffers
MIN_SPLIT_HIDDEN = 128         # below this a batch-1 step is too short to pay for two barriers/layer


def sample(model, num=1, length=None, temperature=1.0, top_k=0, top_p=1.0, prime="",
           stop_at_eos=None, seed=None, on_text=None):
    """Draw ``num`` samples from ``model`` (a :class:`charlm.api.Model`); returns their texts,
    without the prime.

    - ``length``: the most characters generated per sample; default 200, or 1000 when stopping
      at ``<EOS>``.
    - ``temperature``: divides the logits; 0 takes the most probable character every time.
    - ``top_k``: draw only among the k most probable characters (0: all).
    - ``top_p``: then only among the most probable characters that together hold this share of
      the probability (nucleus sampling), in (0, 1]; 1 keeps all.
    - ``prime``: text read before generating. Every one of its characters must be in the model's
      vocabulary: an unknown one raises UsageError naming it (as ``<UNK>`` the model would
      continue from a token it may never have seen in training).
    - ``stop_at_eos``: end a sample when it draws ``<EOS>``; default True in lines mode and False
      in stream mode, where the length is the only stop. A drawn ``<EOS>`` that does not stop the
      sample is written as a newline. ``<UNK>`` is never drawn.
    - ``num``: samples drawn side by side in one batch.
    - ``seed``: the same seed with the same options and model gives the same texts; None is random.
    - ``on_text``: called with each new piece of text as it is generated (``num`` = 1 only).
    """
    length, stop_at_eos, forced = check_options(model, num, length, temperature, top_k, top_p,
                                                prime, stop_at_eos, seed, on_text)
    vocab, network = model.vocab, model.network
    run = Generation(network, num, workers=default_workers(network.hidden_size, num))
    rng = np.random.default_rng(seed)
    pieces = [[] for _ in range(num)]
    chunk = FIRST_CHUNK if on_text is not None else max(1, min(length, CHUNK_VALUES // num))
    generated = 0
    while generated < length:
        steps = min(chunk, length - generated)
        uniforms = rng.random((steps, num)) if temperature > 0 else np.zeros((steps, num))
        out = run.step(forced, uniforms, float(temperature), int(top_k), float(top_p),
                       bool(stop_at_eos))
        forced = forced[:0]
        for i in range(num):
            ids = out[:, i]
            keep = ids >= 0
            if stop_at_eos:
                keep &= ids != EOS_ID
            ids = ids[keep]
            text = vocab.decode(ids, eos="\n")
            pieces[i].append(text)
            if on_text is not None and text:
                on_text(text)
        generated += steps
        if len(out) < steps:
            break
        chunk = min(2 * chunk, MAX_CHUNK) if on_text is not None else chunk
    return ["".join(p) for p in pieces]


def check_options(model, num=1, length=None, temperature=1.0, top_k=0, top_p=1.0, prime="",
                  stop_at_eos=None, seed=None, on_text=None):
    """Raise UsageError, naming the option, for any option of :func:`sample` out of range or a
    prime the model cannot read; returns the resolved (length, stop_at_eos, prime token ids)."""
    def integer(x):
        return isinstance(x, (int, np.integer)) and not isinstance(x, bool)

    def real(x):
        return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)

    checks = [
        (integer(num) and 1 <= num <= MAX_NUM, "--num", f"must be an integer from 1 to {MAX_NUM}"),
        (length is None or integer(length) and 0 <= length <= MAX_LENGTH, "--length",
         f"must be an integer from 0 to {MAX_LENGTH}"),
        (real(temperature) and math.isfinite(temperature) and temperature >= 0, "--temperature",
         "must be a number >= 0 (0 is greedy: always the most probable character)"),
        (integer(top_k) and top_k >= 0, "--top-k", "must be an integer >= 0 (0 turns it off)"),
        (real(top_p) and 0 < top_p <= 1, "--top-p", "must be in (0, 1] (1 turns it off)"),
        (isinstance(prime, str), "--prime", "must be a string"),
        (stop_at_eos is None or isinstance(stop_at_eos, (bool, np.bool_)), "--stop-at-eos",
         "must be True, False or None (None: stop in lines mode only)"),
        (seed is None or (integer(seed) and 0 <= seed < 2**63), "--seed",
         "must be an integer from 0 to 2^63 - 1"),
        (on_text is None or num == 1, "on_text", "streams a single sample: use num=1"),
    ]
    for ok, option, rule in checks:
        if not ok:
            raise UsageError(f"{option} {rule}")
    unknown = model.vocab.unknown(prime)
    if unknown:
        shown = ", ".join(repr(ch) for ch in unknown[:10]) + (", ..." if len(unknown) > 10 else "")
        raise UsageError(f"--prime has characters the model does not know: {shown} "
                         f"(its vocabulary has {len(model.vocab) - 2} characters)")
    if stop_at_eos is None:
        stop_at_eos = model.config.mode == "lines"
    if length is None:
        length = DEFAULT_EOS_CAP if stop_at_eos else DEFAULT_LENGTH
    return length, bool(stop_at_eos), model.vocab.encode(prime).astype(np.int64)


def default_workers(hidden_size, num):
    """Two workers for one sample of a large enough model on a POSIX machine with two free cores
    (the barrier waits call sched_yield); one otherwise."""
    if num != 1 or hidden_size % 2 or hidden_size < MIN_SPLIT_HIDDEN or os.name != "posix":
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return 2 if (cores or 1) >= 2 else 1


def pack(network, workers):
    """The weights of ``network`` as :func:`kernels.sampling.generate` reads them: per worker, the
    columns of its hidden units, gate block by gate block (the GRU's candidate block apart)."""
    p, cell = network.params, network.cell
    H, L, G = network.hidden_size, network.num_layers, GATES[cell]
    n = H // workers
    main_gates = 2 if cell == "gru" else G

    def columns(k, gates):
        return np.array([g * H + np.arange(k * n, (k + 1) * n) for g in gates], np.intp).reshape(-1)

    def stacked(name, layers, gates):
        return np.ascontiguousarray(np.array(
            [[p[f"layers.{l}.{name}"][..., columns(k, gates)] for l in layers]
             for k in range(workers)], np.float32).reshape(
                workers, len(layers), *(() if name == "b" else (H,)), len(gates) * n))

    def part(gates):
        emb = np.ascontiguousarray(np.array(
            [p["layers.0.W_x"][:, columns(k, gates)] for k in range(workers)], np.float32))
        return emb, stacked("W_x", range(1, L), gates), stacked("W_h", range(L), gates), \
            stacked("b", range(L), gates)

    weights = part(range(main_gates))
    candidate = part([2] if cell == "gru" else [])
    return weights + candidate + (np.ascontiguousarray(p["out.W"], np.float32),
                                  np.ascontiguousarray(p["out.b"], np.float32))


def warm_up(network):
    """Compile the generation kernel, or load it from Numba's cache: a call that runs no step."""
    Generation(network, 1).step(np.zeros(0, np.int64), np.zeros((0, 1)), 1.0, 0, 1.0, False)


class Generation:
    """The state of ``num`` samples being generated, and the kernel calls that advance it."""

    def __init__(self, network, num, workers=1):
        if workers > 1 and (num != 1 or network.hidden_size % workers):
            raise ValueError("several workers split the hidden units of a single sample")
        from .kernels import sampling
        self.kernel = sampling.generate
        self.sync_size = workers * sampling.SYNC_STRIDE
        self.cell = {"rnn": sampling.RNN, "gru": sampling.GRU, "lstm": sampling.LSTM}[network.cell]
        self.weights = pack(network, workers)
        self.workers = workers
        L, H = network.num_layers, network.hidden_size
        self.h = np.zeros((2, L, num, H), np.float32)
        self.c = np.zeros((L, num, H), np.float32)
        self.rh = np.zeros((L, num, H), np.float32)
        self.tokens = np.full(num, EOS_ID, np.int64)
        self.steps = 0

    @property
    def state(self):
        """(h, c): the current hidden and cell states, (L, num, H) each."""
        return self.h[self.steps % 2], self.c

    def step(self, forced, uniforms, temperature, top_k, top_p, stop_at_eos):
        """Read the forced tokens, then draw len(uniforms) tokens per sample (see the kernel);
        returns the drawn tokens (steps, num), -1 after a sample's stop, fewer rows if all stopped."""
        out = np.empty(uniforms.shape, np.int64)
        sync = np.zeros(self.sync_size, np.int64)
        args = (self.cell, *self.weights, self.h, self.c, self.rh, self.tokens, self.steps,
                forced, uniforms, temperature, top_k, top_p, stop_at_eos, out, sync)
        if self.workers == 1:
            ran = self.kernel(*args, 0, 1)
        else:
            helpers = [threading.Thread(target=self.kernel, args=args + (k, self.workers))
                       for k in range(1, self.workers)]
            for t in helpers:
                t.start()
            ran = self.kernel(*args, 0, self.workers)
            for t in helpers:
                t.join()
        self.steps += len(forced) + ran
        return out[:ran]
