"""Sampling text from a model: the chunk loop around :func:`charlm.kernels.draw.generate`, where
every step runs.

The generation starts from the zero state with ``<EOS>`` as the first input (as in training),
reads the prime, then draws one character per step and feeds it back. Python sees one call per
chunk of steps (:func:`pieces`); a single sample's text is handed to ``on_text``, or yielded by
:func:`stream`, chunk by chunk, the first chunks short so that text appears at once. Stop strings
are matched on each chunk's text (:mod:`charlm.generation.stops`); ``beam`` hands the request to
:mod:`charlm.generation.beam`, which searches instead of drawing. The options of a request travel
as one checked record, :class:`charlm.generation.options.SamplingOptions`.

Both cores work on every request. A single sample splits each step's hidden units between two
workers that meet at a barrier after each layer (:class:`Generation`; the worker count and the
fan-out are :mod:`charlm.generation.launch`'s). Several samples are split into independent groups,
one per core (:class:`Batch`). The uniforms that decide each draw come from one generator in a
fixed order, so a seed gives the same texts however the work is split and chunked.
"""
from functools import partial

import numpy as np

from ..errors import UsageError
from ..kernels.draw import generate
from ..network.inputs import with_label
from ..network.parallel import cores, fan_out, split
from ..text.vocab import EOS_ID, drawable
from .beam import search
from .launch import Launcher, logits_scratch, worker_choices
from .options import SamplingOptions
from .pattern import MatchingStops, kernel_match
from .stops import StopScanner

FIRST_CHUNK = 16               # steps of the first kernel call when streaming; doubled up to
MAX_CHUNK = 1024               # this, so the text keeps flowing at a few chunks per 0.1 s;
                               # also the chunk of a single sample not streamed, so that Pace
                               # can measure and switch
CHUNK_VALUES = 1 << 20         # steps x samples per call otherwise: bounds the per-call buffers


def sample(model, num=None, length=None, temperature=1.0, top_k=0, top_p=1.0, prime="",
           stop_at_eos=None, seed=None, on_text=None, stop=None, keep_stop=False, beam=None,
           length_penalty=0.0, label=None, match=None, exact=False):
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
    - ``label``: generate text of this label, for a model trained with labels (read at every
      step: :mod:`charlm.text.labels`); None or ``"<any>"``: no label.
    - ``match``: a regular expression that every text (the prime included) fully matches: each
      draw is restricted to the characters that keep the text on a path to a match within the
      length left (:mod:`charlm.generation.pattern`; docs/patterns.md). With ``exact`` (lines
      mode), every match is scored and the samples are drawn from P(text | it matches).

    The options are checked, and their defaults resolved, once: :class:`SamplingOptions`.
    """
    options = SamplingOptions.checked(model, num=num, length=length, temperature=temperature,
                                      top_k=top_k, top_p=top_p, prime=prime,
                                      stop_at_eos=stop_at_eos, seed=seed, stop=stop,
                                      keep_stop=keep_stop, beam=beam,
                                      length_penalty=length_penalty, label=label,
                                      match=match, exact=exact)
    if exact:
        from .pattern import sample_exact
        return sample_exact(model, options)
    if on_text is not None and options.beam is not None:
        raise UsageError("on_text does not apply to --beam: beam search draws nothing, it keeps "
                         "the most probable continuations")
    if on_text is not None and options.num != 1:
        raise UsageError("on_text streams a single sample: use num=1")
    if options.beam is not None:
        return [r.text for r in search(model, options)]
    texts = [[] for _ in range(options.num)]
    for i, text in pieces(model, options, streaming=on_text is not None):
        texts[i].append(text)
        if on_text is not None:
            on_text(text)
    return ["".join(t) for t in texts]


def stream(model, length=None, temperature=1.0, top_k=0, top_p=1.0, prime="", stop_at_eos=None,
           seed=None, stop=None, keep_stop=False, label=None, match=None):
    """One sample as a generator of text pieces, each given as soon as it is generated (the first
    few characters at once, then longer pieces); together, the text :func:`sample` returns with
    the same options. Options are checked when it is called. Closing the generator early (e.g.
    ``break``) stops the generation."""
    options = SamplingOptions.checked(model, num=1, length=length, temperature=temperature,
                                      top_k=top_k, top_p=top_p, prime=prime,
                                      stop_at_eos=stop_at_eos, seed=seed, stop=stop,
                                      keep_stop=keep_stop, label=label,
                                      match=match)
    return (text for _, text in pieces(model, options, streaming=True))


def pieces(model, options, streaming):
    """The generation loop, as a generator of (sample index, new text) in the order generated,
    for checked options (:class:`SamplingOptions`).

    Stop strings are matched on the decoded text of each chunk by a :class:`StopScanner` per
    sample; a sample that has met one is marked done, so the kernel stops drawing for it, and
    when every sample is done the loop ends. With stop strings the chunks start short and
    double, so that a sample stopping early leaves little generated in vain."""
    vocab, network = model.vocab, with_label(model.network, options.label_row)
    num, length, stops = options.num, options.length, options.stops
    run = Generation(network, 1) if num == 1 else Batch(network, num)
    allowed = drawable(vocab, model.config.mode, options.prime)
    rng = np.random.default_rng(options.seed)
    forced = vocab.encode(options.prime).astype(np.int64)
    scanner = StopScanner if options.match is None else partial(MatchingStops, options.match)
    scanners = [scanner(stops, options.keep_stop) for _ in range(num)] if stops else None
    most = MAX_CHUNK if num == 1 or streaming else max(1, CHUNK_VALUES // num)
    growing = streaming or bool(stops)
    chunk = min(FIRST_CHUNK, most) if growing else most
    ended = np.zeros(num, np.bool_)        # by a stop string
    generated = 0
    while generated < length:
        steps = min(chunk, length - generated)
        uniforms = rng.random((steps, num)) if options.temperature > 0 else np.zeros((steps, num))
        out = run.step(forced, uniforms, options, allowed)
        forced = forced[:0]
        for i in np.flatnonzero(~ended):
            ids = out[:, i]
            keep = ids >= 0
            if options.stop_at_eos:
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


class Generation:
    """The state of ``num`` samples being generated, and the kernel calls that advance it.

    ``workers``: threads that split each step of a single sample (1 or 2), or None to choose by
    measured speed (:func:`charlm.generation.launch.worker_choices`). ``tables``: a dict of the
    packed weights, shared between generations of the same network."""

    def __init__(self, network, num, workers=None, tables=None):
        H = network.hidden_size
        if workers is None:
            choices = worker_choices(H) if num == 1 else (1,)
        elif workers == 1 or (num == 1 and H % workers == 0):
            choices = (workers,)
        else:
            raise ValueError("several workers split the hidden units of a single sample")
        self.launcher = Launcher(network, transposed=num > 1, choices=choices, tables=tables)
        L = network.num_layers
        self.h = np.zeros((2, L, num, H), np.float32)
        self.c = np.zeros((2, L, num, H), np.float32)
        self.rh = np.zeros((L, num, H), np.float32)
        self.logits = logits_scratch(num, network.vocab_size)
        self.tokens = np.full(num, EOS_ID, np.int64)
        self.done = np.zeros(num, np.bool_)
        self.steps = 0
        self.drawn = 0                                    # steps that drew
        self.where = np.zeros(num, np.int32)              # states of options.match's automaton

    @property
    def state(self):
        """(h, c): the current hidden and cell states, (L, num, H) each."""
        return self.h[self.steps % 2], self.c[self.steps % 2]

    def stop(self, i):
        """End sample i: the kernel draws nothing more for it."""
        self.done[i] = True

    def step(self, forced, uniforms, options, allowed):
        """Read the forced tokens, then draw len(uniforms) tokens per sample among the allowed
        (:func:`charlm.text.vocab.drawable`) with the options of drawing (temperature, top_k,
        top_p, stop_at_eos of a :class:`SamplingOptions`; see the kernel); returns the drawn
        tokens (steps, num), -1 after a sample's stop, fewer rows if all stop."""
        out = np.empty(uniforms.shape, np.int64)
        if options.match is not None and self.steps == 0:
            self.where[:] = options.match.start
        start = 0
        while True:      # in one call, unless a part measures a worker count (Pace.steps_for)
            part = slice(start, start + self.launcher.pace.steps_for(len(uniforms) - start))
            ran = self._run(forced, uniforms[part], options, allowed, out[part])
            forced, start = forced[:0], start + ran
            if start >= len(uniforms) or ran < part.stop - part.start:
                return out[:start]

    def _run(self, forced, uniforms, options, allowed, out):
        match = kernel_match(options.match, self.where, options.length - self.drawn)
        args = ((self.h, self.c, self.rh), self.logits, self.tokens, self.done, self.steps, forced,
                uniforms, float(options.temperature), int(options.top_k), float(options.top_p),
                allowed, match, bool(options.stop_at_eos), out)
        ran = self.launcher.run(generate, args, len(forced))
        self.steps += len(forced) + ran
        self.drawn += ran
        return ran


class Batch:
    """Several samples split into one :class:`Generation` per core, run side by side: the samples
    are independent, so the threads never wait for each other within a chunk (splitting each
    product across the cores instead makes every step wait)."""

    def __init__(self, network, num):
        edges = split(num, min(num, cores()))
        tables = {}
        self.num = num
        self.parts = [(lo, hi, Generation(network, hi - lo, workers=1, tables=tables))
                      for lo, hi in zip(edges[:-1], edges[1:])]

    def stop(self, i):
        """End sample i (as :meth:`Generation.stop`)."""
        for lo, hi, g in self.parts:
            if lo <= i < hi:
                g.stop(i - lo)

    def step(self, forced, uniforms, *options):
        """As :meth:`Generation.step`, for all the parts."""
        live = [(lo, hi, g) for lo, hi, g in self.parts if not g.done.all()]
        if not live:        # every sample stopped at the end of the last chunk
            return np.empty((0, self.num), np.int64)
        outs = fan_out([
            lambda lo=lo, hi=hi, g=g: g.step(forced, np.ascontiguousarray(uniforms[:, lo:hi]), *options)
            for lo, hi, g in live])
        out = np.full((max(map(len, outs), default=0), self.num), -1, np.int64)
        for (lo, hi, _), part in zip(live, outs):
            out[:len(part), lo:hi] = part
        return out
