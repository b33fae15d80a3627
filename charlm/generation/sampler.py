"""Sampling text from a model: option checks, weight packing and the chunk loop around
:func:`charlm.kernels.draw.generate`, where every step runs.

The generation starts from the zero state with ``<EOS>`` as the first input (as in training),
reads the prime, then draws one character per step and feeds it back. Python sees one call per
chunk of steps (:func:`pieces`); a single sample's text is handed to ``on_text``, or yielded by
:func:`stream`, chunk by chunk, the first chunks short so that text appears at once. Stop strings
are matched on each chunk's text (:mod:`charlm.generation.stops`); ``beam`` hands the request to
:mod:`charlm.generation.beam`, which searches instead of drawing.

Both cores work on every request. A single sample splits each step's hidden units between two
workers that meet at a barrier after each layer (:class:`Generation`, for models of at least
``MIN_SPLIT_HIDDEN`` units; :class:`Pace` falls back to one worker while that is faster). Several
samples are split into independent groups, one per core (:class:`Batch`). The uniforms that decide
each draw come from one generator in a fixed order, so a seed gives the same texts however the
work is split and chunked.
"""
import math
import os
import time

import numpy as np

from ..errors import UsageError
from ..network.parallel import cores, fan_out, split
from .stops import StopScanner, check_stops
from ..text.vocab import EOS_ID, drawable

DEFAULT_LENGTH = 200           # characters, when the length is the only stop
DEFAULT_EOS_CAP = 1000         # characters, when stopping at <EOS>: a cap for a model that rambles
MAX_NUM = 100_000
MAX_LENGTH = 10_000_000
FIRST_CHUNK = 16               # steps of the first kernel call when streaming; doubled up to
MAX_CHUNK = 1024               # this, so the text keeps flowing at a few chunks per 0.1 s;
                               # also the chunk of a single sample not streamed, so that Pace
                               # can measure and switch
CHUNK_VALUES = 1 << 20         # steps x samples per call otherwise: bounds the per-call buffers
MIN_SPLIT_HIDDEN = 128         # below this a batch-1 step is too short to pay for the barriers


def sample(model, num=None, length=None, temperature=1.0, top_k=0, top_p=1.0, prime="",
           stop_at_eos=None, seed=None, on_text=None, stop=None, keep_stop=False, beam=None,
           length_penalty=0.0):
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
    - ``num``: samples drawn side by side in one batch (default 1); with ``beam``, the number of
      best continuations returned (default: all that the search keeps).
    - ``seed``: the same seed with the same options and model gives the same texts; None is random.
    - ``on_text``: called with each new piece of text as it is generated (``num`` = 1 only).
    - ``stop``: a string or a list of strings; each sample ends at the first occurrence of any of
      them in its generated text, which is cut before it, or after it with ``keep_stop``
      (see :mod:`charlm.generation.stops`).
    - ``beam``: return the most probable continuations found by a beam search of this width
      instead of drawing (see :func:`charlm.generation.beam.beam_search`, which also gives their
      log-probabilities); ``length_penalty`` ranks them by log P / n^length_penalty.
    """
    if beam is not None:
        return [r.text for r in sample_beams(model, num, length, temperature, top_k, top_p, prime,
                                             stop_at_eos, seed, on_text, stop, keep_stop, beam,
                                             length_penalty)]
    if length_penalty != 0.0:
        raise UsageError("--length-penalty ranks the results of --beam: give --beam K")
    num = 1 if num is None else num
    length, stop_at_eos, forced = check_options(model, num, length, temperature, top_k, top_p,
                                                prime, stop_at_eos, seed, on_text)
    stops = check_stops(model, stop)
    texts = [[] for _ in range(num)]
    for i, text in pieces(model, num, length, temperature, top_k, top_p, forced, stop_at_eos,
                          seed, stops, keep_stop, streaming=on_text is not None):
        texts[i].append(text)
        if on_text is not None:
            on_text(text)
    return ["".join(t) for t in texts]


def stream(model, length=None, temperature=1.0, top_k=0, top_p=1.0, prime="", stop_at_eos=None,
           seed=None, stop=None, keep_stop=False):
    """One sample as a generator of text pieces, each given as soon as it is generated (the first
    few characters at once, then longer pieces); together, the text :func:`sample` returns with
    the same options. Options are checked when it is called. Closing the generator early (e.g.
    ``break``) stops the generation."""
    length, stop_at_eos, forced = check_options(model, 1, length, temperature, top_k, top_p,
                                                prime, stop_at_eos, seed)
    stops = check_stops(model, stop)
    return (text for _, text in pieces(model, 1, length, temperature, top_k, top_p, forced,
                                       stop_at_eos, seed, stops, keep_stop, streaming=True))


def sample_beams(model, num, length, temperature, top_k, top_p, prime, stop_at_eos, seed, on_text,
                 stop, keep_stop, beam, length_penalty):
    """:func:`sample` with ``beam``: the BeamResults, after refusing the options that only
    drawing uses."""
    from .beam import beam_search
    drawing = [(temperature != 1.0, "--temperature"), (top_k != 0, "--top-k"),
               (top_p != 1.0, "--top-p"), (seed is not None, "--seed"),
               (on_text is not None, "on_text")]
    for given, option in drawing:
        if given:
            raise UsageError(f"{option} does not apply to --beam: beam search draws nothing, it "
                             "keeps the most probable continuations")
    results = beam_search(model, prime, beam, length, stop_at_eos, length_penalty, stop,
                          keep_stop)
    if num is None:
        return results
    if not (isinstance(num, (int, np.integer)) and not isinstance(num, bool) and 1 <= num <= beam):
        raise UsageError(f"--num with --beam {beam} must be from 1 to {beam}: the search keeps "
                         f"{beam} continuations")
    return results[:num]


def pieces(model, num, length, temperature, top_k, top_p, forced, stop_at_eos, seed, stops,
           keep_stop, streaming):
    """The generation loop, as a generator of (sample index, new text) in the order generated,
    for options already checked (:func:`check_options`, :func:`charlm.generation.stops.check_stops`).

    Stop strings are matched on the decoded text of each chunk by a :class:`StopScanner` per
    sample; a sample that has met one is marked done, so the kernel stops drawing for it, and
    when every sample is done the loop ends. With stop strings the chunks start short and
    double, so that a sample stopping early leaves little generated in vain."""
    vocab, network = model.vocab, model.network
    run = Generation(network, 1) if num == 1 else Batch(network, num)
    allowed = drawable(vocab, model.config.mode)
    rng = np.random.default_rng(seed)
    scanners = [StopScanner(stops, keep_stop) for _ in range(num)] if stops else None
    most = MAX_CHUNK if num == 1 or streaming else max(1, CHUNK_VALUES // num)
    growing = streaming or bool(stops)
    chunk = min(FIRST_CHUNK, most) if growing else most
    ended = np.zeros(num, np.bool_)        # by a stop string
    generated = 0
    while generated < length:
        steps = min(chunk, length - generated)
        uniforms = rng.random((steps, num)) if temperature > 0 else np.zeros((steps, num))
        out = run.step(forced, uniforms, float(temperature), int(top_k), float(top_p), allowed,
                       bool(stop_at_eos))
        forced = forced[:0]
        for i in np.flatnonzero(~ended):
            ids = out[:, i]
            keep = ids >= 0
            if stop_at_eos:
                keep &= ids != EOS_ID
            text = vocab.decode(ids[keep], eos="\n")
            if scanners is not None:
                text = scanners[i].feed(text)
                if scanners[i].stopped:
                    ended[i] = True
                    run.stop(i)
            if text:
                yield int(i), text
        generated += steps
        if len(out) < steps or ended.all():
            break
        if growing:
            chunk = min(2 * chunk, most)
    for i, scanner in enumerate(scanners or ()):
        text = scanner.finish()
        if text:
            yield i, text


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


def pack(network, workers):
    """The weights of ``network`` as :func:`kernels.sampling.generate` reads them: per worker, the
    columns of its hidden units, gate block by gate block (the GRU's candidate block apart)."""
    p, cell = network.params, network.cell
    H, L, G = network.hidden_size, network.num_layers, cell.gates
    n = H // workers

    def split(w, gates):
        """(..., G*H) -> (workers, ..., gates*n): worker k gets units [k n, (k + 1) n) of each."""
        lead = w.shape[:-1]
        w = w.reshape(*lead, G, workers, n)[..., gates, :, :]
        return np.moveaxis(w, -2, 0).reshape(workers, *lead, -1)

    def part(gates):
        """Layer 0's input rows, the input weights of the layers above, the recurrent weights and
        the biases, for these gate blocks."""
        width = (gates.stop - gates.start) * n
        emb = np.ascontiguousarray(split(p["layers.0.W_x"], gates), np.float32)
        w_x = np.empty((workers, L - 1, H, width), np.float32)
        w_h = np.empty((workers, L, H, width), np.float32)
        b = np.empty((workers, L, width), np.float32)
        for l in range(L):
            if l > 0:
                w_x[:, l - 1] = split(p[f"layers.{l}.W_x"], gates)
            w_h[:, l] = split(p[f"layers.{l}.W_h"], gates)
            b[:, l] = split(p[f"layers.{l}.b"], gates)
        return emb, w_x, w_h, b

    if cell.reset_gated:   # the candidate block reads r * h_{t-1}: kept apart
        weights, candidate = part(slice(0, 2)), part(slice(2, 3))
    else:
        weights, candidate = part(slice(0, G)), part(slice(0, 0))
    return weights + candidate + (np.ascontiguousarray(p["out.W"], np.float32),
                                  np.ascontiguousarray(p["out.b"], np.float32))


def transposed(emb, w_x, w_h, b, emb_c, w_xc, w_hc, b_c, w_y, b_y):
    """The weights of :func:`pack` as the kernels read them for several rows (sampling several
    samples, beam search): each layer's products as one ``matmul_nt`` (rows of the weights along
    the input): W_h^T for layer 0, whose input product is a row gather, and [W_x; W_h]^T for the
    layers above, which read [x | h]."""
    def layer_tables(w_x, w_h):
        first = np.ascontiguousarray(np.swapaxes(w_h[:, 0], 1, 2))      # (workers, width, H)
        above = np.ascontiguousarray(np.swapaxes(
            np.concatenate([w_x, w_h[:, 1:]], axis=2), 2, 3))           # (workers, L-1, width, 2H)
        return first, above

    return (emb, *layer_tables(w_x, w_h), b, emb_c, *layer_tables(w_xc, w_hc), b_c,
            np.ascontiguousarray(w_y.T), b_y)


def kernel_weights(network, workers, rows):
    """The weight arguments of :func:`kernels.sampling.generate` for ``rows`` samples side by side:
    the shared tables, then the rows of the weights for one sample, or their transposes for
    several (the other layout's tables empty)."""
    emb, w_x, w_h, b, emb_c, w_xc, w_hc, b_c, w_y, b_y = pack(network, workers)
    empty = [np.zeros((0,) * k, np.float32) for k in range(5)]
    if rows == 1:
        return (emb, b, emb_c, b_c, b_y, w_x, w_h, w_xc, w_hc, w_y,
                empty[3], empty[4], empty[3], empty[4], empty[2])
    _, wt0, wt_up, _, _, wtc0, wtc_up, _, wt_y, _ = transposed(emb, w_x, w_h, b, emb_c, w_xc,
                                                               w_hc, b_c, w_y, b_y)
    return (emb, b, emb_c, b_c, b_y, empty[4], empty[4], empty[4], empty[4], empty[2],
            wt0, wt_up, wtc0, wtc_up, wt_y)


class Pace:
    """Chooses a worker count from the measured speed of each. Two workers are faster on idle
    cores; when another process holds one core, their barriers wait for a preempted partner and
    one worker is faster. Both give the same tokens, so the choice can change at any chunk."""

    RECHECK = 8                # every this many chunks, the slower choice is measured again

    def __init__(self, choices):
        self.rates = dict.fromkeys(choices)
        self.chunks = 0

    def pick(self):
        untried = [k for k, r in self.rates.items() if r is None]
        if untried:
            return untried[0]
        self.chunks += 1
        ranked = sorted(self.rates, key=self.rates.get, reverse=True)
        return ranked[-1] if self.chunks % self.RECHECK == 0 else ranked[0]

    def record(self, workers, steps, seconds):
        self.rates[workers] = steps / max(seconds, 1e-9)


class Generation:
    """The state of ``num`` samples being generated, and the kernel calls that advance it.

    ``workers``: threads that split each step of a single sample (1 or 2), or None to choose by
    :class:`Pace`. ``packed``: a dict of the packed weights by worker count and layout, shared
    between generations of the same network."""

    def __init__(self, network, num, workers=None, packed=None):
        from ..kernels import draw as sampling
        self.kernel = sampling.generate
        self.cell = network.cell.code
        self.network = network
        self.packed = {} if packed is None else packed
        H = network.hidden_size
        halves = num == 1 and H % 2 == 0 and H >= MIN_SPLIT_HIDDEN and os.name == "posix" \
            and cores() >= 2
        if workers is None:
            self.pace = Pace((2, 1) if halves else (1,))
        elif workers == 1 or (num == 1 and H % workers == 0):
            self.pace = Pace((workers,))
        else:
            raise ValueError("several workers split the hidden units of a single sample")
        L = network.num_layers
        self.h = np.zeros((2, L, num, H), np.float32)
        self.c = np.zeros((2, L, num, H), np.float32)
        self.rh = np.zeros((L, num, H), np.float32)
        self.tokens = np.full(num, EOS_ID, np.int64)
        self.done = np.zeros(num, np.bool_)
        self.steps = 0

    @property
    def state(self):
        """(h, c): the current hidden and cell states, (L, num, H) each."""
        return self.h[self.steps % 2], self.c[self.steps % 2]

    def stop(self, i):
        """End sample i: the kernel draws nothing more for it."""
        self.done[i] = True

    def step(self, forced, uniforms, temperature, top_k, top_p, allowed, stop_at_eos):
        """Read the forced tokens, then draw len(uniforms) tokens per sample among the allowed
        (:func:`charlm.text.vocab.drawable`; see the kernel); returns the drawn tokens (steps, num),
        -1 after a sample's stop, fewer rows if all stop."""
        workers = self.pace.pick()
        layout = (workers, len(self.tokens) > 1)
        if layout not in self.packed:
            self.packed[layout] = kernel_weights(self.network, workers, len(self.tokens))
        from ..kernels.draw import SYNC_STRIDE
        out = np.empty(uniforms.shape, np.int64)
        sync = np.zeros(workers * SYNC_STRIDE, np.int64)
        args = (self.cell, *self.packed[layout], self.h, self.c, self.rh, self.tokens, self.done,
                self.steps, forced, uniforms, temperature, top_k, top_p, allowed, stop_at_eos,
                out, sync)
        start = time.perf_counter()
        ran = fan_out([lambda k=k: self.kernel(*args, k, workers) for k in range(workers)])[0]
        self.pace.record(workers, len(forced) + ran, time.perf_counter() - start)
        self.steps += len(forced) + ran
        return out[:ran]


class Batch:
    """Several samples split into one :class:`Generation` per core, run side by side: the samples
    are independent, so the threads never wait for each other within a chunk (splitting each
    product across the cores instead makes every step wait)."""

    def __init__(self, network, num):
        edges = split(num, min(num, cores()))
        packed = {}
        self.num = num
        self.parts = [(lo, hi, Generation(network, hi - lo, workers=1, packed=packed))
                      for lo, hi in zip(edges[:-1], edges[1:])]

    def stop(self, i):
        """End sample i (as :meth:`Generation.stop`)."""
        for lo, hi, g in self.parts:
            if lo <= i < hi:
                g.stop(i - lo)

    def step(self, forced, uniforms, *options):
        """As :meth:`Generation.step`, for all the parts."""
        live = [(lo, hi, g) for lo, hi, g in self.parts if not g.done.all()]
        outs = fan_out([
            lambda lo=lo, hi=hi, g=g: g.step(forced, np.ascontiguousarray(uniforms[:, lo:hi]), *options)
            for lo, hi, g in live])
        out = np.full((max(map(len, outs), default=0), self.num), -1, np.int64)
        for (lo, hi, _), part in zip(live, outs):
            out[:len(part), lo:hi] = part
        return out
