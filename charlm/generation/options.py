"""The options of a generation request, as one record: :class:`SamplingOptions`, built and checked
once (:meth:`SamplingOptions.checked`) and handed whole to the sampler and the beam search.

A bad option raises UsageError naming it as the command line spells it (``--top-k``), so that the
API and the command give the same message.
"""
import math
from dataclasses import dataclass

import numpy as np

from ..errors import UsageError
from .stops import check_stops

DEFAULT_LENGTH = 200           # characters, when the length is the only stop
DEFAULT_EOS_CAP = 1000         # characters, when stopping at <EOS>: a cap for a model that rambles
MAX_NUM = 100_000
MAX_LENGTH = 10_000_000
MAX_BEAM = 256
MAX_CELLS = 20_000_000         # beam rows x length: the search's back-pointers (16 bytes a cell)


@dataclass(frozen=True)
class SamplingOptions:
    """What to generate (see :func:`charlm.generation.sampler.sample` for each option). Built by
    :meth:`checked`, every field is resolved: ``length`` and ``stop_at_eos`` hold the model's
    defaults when none was given, and ``stops`` is a tuple of strings. Constructed directly,
    nothing is checked (tests and warm-ups)."""
    num: int | None = 1             # samples; with beam: results returned (None: all kept)
    length: int = DEFAULT_LENGTH
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    prime: str = ""
    stop_at_eos: bool = False
    seed: int | None = None
    stops: tuple = ()
    keep_stop: bool = False
    beam: int | None = None         # a beam search of this width instead of drawing
    length_penalty: float = 0.0
    label_row: int = 0              # the label read at every step, its token id (0: none)
    match: object = None            # a generation.pattern.Pattern every text must match

    @classmethod
    def checked(cls, model, num=None, length=None, temperature=1.0, top_k=0, top_p=1.0,
                prime="", stop_at_eos=None, seed=None, stop=None, keep_stop=False, beam=None,
                length_penalty=0.0, label=None, match=None, exact=False):
        """The options for ``model`` (a :class:`charlm.api.Model`), or UsageError naming the
        first one out of range, a prime the model cannot read, a stop string it never writes,
        an option of drawing given to a beam search or to ``exact`` draws, a label the model
        does not know, or a pattern (``match``, a regular expression) it cannot follow
        (:func:`charlm.generation.pattern.for_model`)."""
        from ..text.labels import label_row
        row = label_row(model, label)
        if exact and model.config.mode != "lines":
            raise UsageError("--exact needs a lines-mode model: a match is a whole line, which "
                             "ends at <EOS>")
        if exact:
            refuse_for_exact(match, [(beam is not None, "--beam"),
                                     (temperature != 1.0, "--temperature"),
                                     (top_k != 0, "--top-k"), (top_p != 1.0, "--top-p"),
                                     (bool(stop), "--stop"), (row != 0, "--label")])
        if beam is None:
            if length_penalty != 0.0:
                raise UsageError("--length-penalty ranks the results of --beam: give --beam K")
            num = 1 if num is None else num
        else:
            refuse_drawing_options(temperature, top_k, top_p, seed)
        check_ranges(1 if num is None or beam is not None else num, length, temperature, top_k,
                     top_p, prime, stop_at_eos, seed)
        check_prime(model, prime)
        stops = check_stops(model, stop)
        if keep_stop and not stops:
            raise UsageError("--keep-stop applies to --stop STR")
        asked_eos = stop_at_eos
        if stop_at_eos is None:
            stop_at_eos = default_stop_at_eos(model)
        if length is None:
            length = DEFAULT_EOS_CAP if stop_at_eos else DEFAULT_LENGTH
        pattern = None
        if match is not None:
            from .pattern import for_model
            pattern = for_model(model, match, length, prime, asked_eos)
            stop_at_eos = True             # a text ends where its match may end, at <EOS>
        if beam is not None:
            check_beam(beam, length, length_penalty)
            check_beam_num(num, beam)
            check_beam_stops(model, stops, stop_at_eos)
            if match is not None and stops and not keep_stop:
                raise UsageError("--stop with --beam and --match needs --keep-stop: the search "
                                 "checks that the text with its stop string matches")
        return cls(num=num, length=int(length), temperature=float(temperature),
                   top_k=int(top_k), top_p=float(top_p), prime=prime,
                   stop_at_eos=bool(stop_at_eos), seed=seed, stops=stops,
                   keep_stop=bool(keep_stop), beam=beam, length_penalty=float(length_penalty),
                   label_row=int(row), match=pattern)


def default_stop_at_eos(model):
    """Whether <EOS> ends a text unless told: in lines mode, where it ends a line."""
    return model.config.mode == "lines"


def check_beam_stops(model, stops, stop_at_eos):
    """Raise UsageError for a stop string with a newline that a beam search cannot write: without
    stopping at <EOS> its continuations hold none, and a lines-mode model draws no newline."""
    writes_newline = model.config.mode != "lines" and "\n" in model.vocab.index
    if not stop_at_eos and not writes_newline and any("\n" in s for s in stops):
        raise UsageError("--stop with a newline never occurs in --beam's continuations here: "
                         "without stopping at <EOS> they hold none, and this model writes no "
                         "newline otherwise")


def refuse_for_exact(match, given):
    """Raise UsageError for exact draws (``--exact``) without a pattern, or with one of the
    options in ``given`` ((whether it is given, its name) pairs), which they do not take."""
    if match is None:
        raise UsageError("--exact draws from the matches of --match: give --match REGEX")
    for on, option in given:
        if on:
            raise UsageError(f"{option} does not apply to --exact, which draws from the model's "
                             "own probabilities of the whole matches")


def integer(x):
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def real(x):
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def check_ranges(num, length, temperature, top_k, top_p, prime, stop_at_eos, seed):
    """Raise UsageError, naming the option, for the first option of drawing out of range."""
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
    ]
    for ok, option, rule in checks:
        if not ok:
            raise UsageError(f"{option} {rule}")


def check_prime(model, prime):
    """Raise UsageError naming the characters of the prime that the model does not know (as
    ``<UNK>`` the model would continue from a token it may never have seen in training)."""
    unknown = model.vocab.unknown(prime)
    if unknown and model.vocab.kind == "chars":   # a word model reads them as <UNK> (docs/words.md)
        shown = ", ".join(repr(ch) for ch in unknown[:10]) + (", ..." if len(unknown) > 10 else "")
        raise UsageError(f"--prime has characters the model does not know: {shown} "
                         f"(its vocabulary has {len(model.vocab) - 2} characters)")


def refuse_drawing_options(temperature, top_k, top_p, seed):
    """Raise UsageError for an option that only drawing uses, given to a beam search."""
    drawing = [(temperature != 1.0, "--temperature"), (top_k != 0, "--top-k"),
               (top_p != 1.0, "--top-p"), (seed is not None, "--seed")]
    for given, option in drawing:
        if given:
            raise UsageError(f"{option} does not apply to --beam: beam search draws nothing, it "
                             "keeps the most probable continuations")


def check_beam(beam, length, length_penalty):
    """Raise UsageError, naming the option, for a beam width or length penalty out of range."""
    if not (integer(beam) and 1 <= beam <= MAX_BEAM):
        raise UsageError(f"--beam must be an integer from 1 to {MAX_BEAM} (1 is greedy decoding)")
    if (beam + 1) * length > MAX_CELLS:
        raise UsageError(f"--beam {beam} with --length {length} is too large a search: keep "
                         f"(beam + 1) x length within {MAX_CELLS:,}")
    if not (real(length_penalty) and 0 <= length_penalty <= 10):
        raise UsageError("--length-penalty must be a number from 0 to 10 (0: rank by log P; "
                         "1: by log P per character)")


def check_beam_num(num, beam):
    """Raise UsageError unless num (the results returned) is None or from 1 to beam."""
    if num is not None and not (integer(num) and 1 <= num <= beam):
        raise UsageError(f"--num with --beam {beam} must be from 1 to {beam}: the search keeps "
                         f"{beam} continuations")
