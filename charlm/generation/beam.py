"""Beam search: the K most probable continuations of a prime that the search finds, with their
log-probabilities: the chunk loop around :func:`charlm.kernels.beam_steps.beam_steps` (where
every step runs; its docstring gives the algorithm) and the results read back. The options are
checked by :class:`charlm.generation.options.SamplingOptions`; the kernel runs through
:class:`charlm.generation.launch.Launcher`, as sampling's does.

A result's ``log_prob`` is log P(text | <EOS>, prime) in nats, as ``charlm score`` computes it:
the sum of log p of each generated character, plus log p(<EOS>) when the result ended on <EOS>.
So, with P_score the score of a text, for a result that ended on <EOS> (lines mode)

    log_prob = log P_score(prime + text) - log P_score(prime) + log p(<EOS> | <EOS>, prime)

and for one that ended otherwise, the closing <EOS> term of lines mode taken off the first score;
in stream mode (no closing term) log_prob = log P_score(prime + text) - log P_score(prime).
Results are ranked by their ``score``: the log-probability of the whole continuation (the stop
string included) divided by n^length_penalty, n its tokens.
"""
import weakref
from dataclasses import dataclass

import numpy as np

from ..kernels import beam_steps as kernel
from ..network.inputs import with_label
from ..text.vocab import EOS_ID, drawable
from .launch import Launcher, worker_choices
from .options import SamplingOptions
from .pattern import kernel_match
from .stops import ending_stop, stop_table

FIRST_CHUNK = 32           # search steps of the first kernel call, doubled up to
MAX_CHUNK = 512            # this, so that the worker count can be measured and Ctrl-C heard
ENDED = {kernel.EOS: "eos", kernel.STOP: "stop", kernel.CAP: "length"}


@dataclass
class BeamResult:
    """One continuation found by the search."""
    text: str           # after the prime; without the closing <EOS>, the stop string cut unless kept
    log_prob: float     # log P(text | <EOS>, prime), nats; + log p(<EOS>) when ended == "eos"
    score: float        # what the search ranked by (see the module docstring)
    ended: str          # "eos", "stop" (a stop string) or "length" (--length reached)
    num_tokens: int     # predicted tokens counted in log_prob

    def to_json(self):
        return {"text": self.text, "log_prob": self.log_prob, "score": self.score,
                "ended": self.ended, "num_tokens": self.num_tokens}


def beam_search(model, prime="", beam=8, length=None, stop_at_eos=None, length_penalty=0.0,
                stop=None, keep_stop=False, label=None, match=None):
    """The ``beam`` best continuations of ``prime`` that the search finds, best first (fewer when
    the vocabulary offers fewer), as :class:`BeamResult`.

    - ``length``: the most characters per continuation (default 200; 1000 when stopping at <EOS>).
    - ``stop_at_eos``: a continuation ends at <EOS> (default: in lines mode). Otherwise <EOS> is
      never part of one, so that every result is text that ``charlm score`` reads back as it is.
    - ``length_penalty``: alpha >= 0; rank by log P / n^alpha (0: by log P; 1: per token).
    - ``stop``, ``keep_stop``: stop strings end a continuation (see :mod:`charlm.generation.stops`).
    - ``match``: a regular expression every continuation (with the prime) fully matches: only
      extensions that can still be completed to a match are kept (docs/patterns.md).
    """
    options = SamplingOptions.checked(model, num=None, length=length, prime=prime,
                                      stop_at_eos=stop_at_eos, stop=stop, keep_stop=keep_stop,
                                      beam=beam, length_penalty=length_penalty, label=label,
                                      match=match)
    return search(model, options)


def search(model, options):
    """The continuations a beam search finds for checked options (:class:`SamplingOptions` with
    a ``beam``), best first: the first ``options.num``, or all if it is None."""
    if options.length == 0:
        results = [BeamResult("", 0.0, 0.0, "length", 0)]
    else:
        allowed = drawable(model.vocab, model.config.mode, options.prime)
        allowed[:, EOS_ID] &= options.stop_at_eos
        run = Search(with_label(model.network, options.label_row), options.beam,
                     options.length, allowed, stop_table(model.vocab, options.stops),
                     options.length_penalty, match=options.match)
        forced = model.vocab.encode(options.prime).astype(np.int64)
        chunk = FIRST_CHUNK
        while not run.done:
            run.run(forced, chunk)
            forced = forced[:0]
            chunk = min(2 * chunk, MAX_CHUNK)
        results = run.results(model.vocab, options.stops, options.keep_stop)
    return results if options.num is None else results[:options.num]


def warm_up(network):
    """Compile (or load from the cache) the search kernel: a call that runs no step."""
    search = Search(network, 2, 1, np.ones((2, network.vocab_size), np.bool_),
                    stop_table(None, ()), 0.0)
    search.run(np.zeros(0, np.int64), 0)


_tables = weakref.WeakKeyDictionary()     # network -> its packed weights (Launcher.tables)


class Search:
    """The state of one beam search (see ``kernels.beam_steps`` for each array) and the kernel
    calls that advance it. K beams, plus the greedy row when K > 1.

    The network's weights are packed once per network and worker count, and kept while the
    network lives (a loaded model's weights do not change): packing takes milliseconds, as long
    as dozens of search steps."""

    def __init__(self, network, K, length, allowed, stops, alpha, match=None):
        self.kernel = kernel
        self.K, self.length = K, length
        self.allowed, self.alpha = allowed, float(alpha)
        self.stops, self.stop_lengths = stops
        L, H = network.num_layers, network.hidden_size
        B = K + 1 if K > 1 else K
        self.launcher = Launcher(network, transposed=True, choices=worker_choices(H),
                                 tables=_tables.setdefault(network, {}))
        self.h = np.zeros((2, L, B, H), np.float32)
        self.c = np.zeros((2, L, B, H), np.float32)
        self.rh = np.zeros((L, B, H), np.float32)
        self.rows = np.arange(B, dtype=np.int64)
        self.match = match                     # a generation.pattern.Pattern, or None
        self.where = np.full(B, 0 if match is None else match.start, np.int32)
        self.tokens = np.full(B, EOS_ID, np.int64)
        self.log_p = np.zeros(B, np.float64)
        self.tails = np.full((B, self.stops.shape[1]), -1, np.int64)
        self.finished = np.zeros((K, kernel.FIELDS), np.float64)
        self.greedy = np.zeros(kernel.FIELDS, np.float64)
        self.counts = np.zeros(kernel.COUNTS, np.int64)
        self.counts[kernel.LIVE_ROWS] = 1
        self.counts[kernel.GREEDY_LIVE] = B > K
        self.counts[kernel.GREEDY_ALIAS] = 0      # the greedy path starts as the beam's row 0
        self.back_parent = np.zeros((length, B), np.int32)
        self.back_token = np.zeros((length, B), np.int32)
        self.back_logp = np.zeros((length, B), np.float64)

    @property
    def steps(self):
        return int(self.counts[self.kernel.STEPS])

    @property
    def done(self):
        return bool(self.counts[self.kernel.DONE]) or self.steps >= self.length

    def run(self, forced, steps):
        """Read the forced tokens (the prime), then run up to ``steps`` search steps."""
        search = (self.rows, self.tokens, self.log_p, self.tails, self.finished, self.greedy,
                  self.counts)
        back = (self.back_parent, self.back_token, self.back_logp)
        args = ((self.h, self.c, self.rh), search, back, forced, steps, self.length, self.allowed,
                kernel_match(self.match, self.where, self.length), self.stops, self.stop_lengths,
                self.alpha)
        self.launcher.run(self.kernel.beam_steps, args, len(forced))

    def records(self):
        """The candidates for the results (rows of kernels.beam_steps's FIELDS): the beam's finished
        hypotheses, its live ones if the length ended them, and the greedy row's."""
        k = self.kernel
        records = list(self.finished[:self.counts[k.FINISHED]])
        live_rows = list(range(self.counts[k.LIVE_ROWS]))
        if self.K < len(self.rows):                   # the greedy row, unless still in the beam
            if not self.counts[k.GREEDY_LIVE]:
                records.append(self.greedy)
            elif self.counts[k.GREEDY_ALIAS] < 0:
                live_rows.append(self.K)
        if self.steps >= self.length:
            t = self.length - 1
            for j in live_rows:
                record = np.zeros(k.FIELDS)
                record[[k.SCORE, k.LOG_P, k.STEP, k.PARENT, k.TOKEN, k.TOKEN_LOG_P, k.LENGTH,
                        k.KIND]] = (k.normalized(self.log_p[j], self.length, self.alpha),
                                    self.log_p[j], t, self.back_parent[t, j],
                                    self.back_token[t, j], self.back_logp[t, j], self.length,
                                    k.CAP)
                records.append(record)
        return records

    def results(self, vocab, stops, keep_stop):
        """The K best distinct candidates as BeamResults, best first."""
        k = self.kernel
        seen, results = set(), []
        records = sorted(self.records(), key=lambda r: -r[k.SCORE])    # stable: beams first
        for record in records:
            step = int(record[k.STEP])
            tokens = np.empty(step + 1, np.int32)
            logps = np.empty(step + 1, np.float64)
            tokens[step], logps[step] = record[k.TOKEN], record[k.TOKEN_LOG_P]
            k.trace(self.back_parent, self.back_token, self.back_logp, step - 1,
                    int(record[k.PARENT]), tokens, logps)
            key = tokens.tobytes()
            if key in seen:
                continue
            seen.add(key)
            results.append(self._result(vocab, tokens, logps, record, stops, keep_stop))
        return results[:self.K]

    def _result(self, vocab, tokens, logps, record, stops, keep_stop):
        k = self.kernel
        ended = ENDED[int(record[k.KIND])]
        counted = len(tokens)
        if ended == "eos":
            text = vocab.decode(tokens[:-1])
        else:
            text = vocab.decode(tokens)
        if ended == "stop" and not keep_stop:
            cut = len(ending_stop(text, stops))
            text, counted = text[:len(text) - cut], counted - cut
        return BeamResult(text, float(logps[:counted].sum()), float(record[k.SCORE]), ended,
                          counted)
