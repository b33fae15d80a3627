"""Beam search: the K most probable continuations of a prime that the search finds, with their
log-probabilities. Options, the chunk loop around :func:`charlm.kernels.beam_steps.beam_steps` (where
every step runs; its docstring gives the algorithm) and the results read back.

A result's ``log_prob`` is log P(text | <EOS>, prime) in nats, as ``charlm score`` computes it:
the sum of log p of each generated character, plus log p(<EOS>) when the result ended on <EOS>.
So, with P_score the score of a text, for a result that ended on <EOS> (lines mode)

    log_prob = log P_score(prime + text) - log P_score(prime) + log p(<EOS> | <EOS>, prime)

and for one that ended otherwise, the closing <EOS> term of lines mode taken off the first score;
in stream mode (no closing term) log_prob = log P_score(prime + text) - log P_score(prime).
Results are ranked by their ``score``: the log-probability of the whole continuation (the stop
string included) divided by n^length_penalty, n its tokens.
"""
import time
import weakref
from dataclasses import dataclass

import numpy as np

from ..errors import UsageError
from ..network.parallel import cores, fan_out
from .sampler import MIN_SPLIT_HIDDEN, Pace, check_options, pack, transposed
from .stops import check_stops, ending_stop, stop_table
from ..text.vocab import EOS_ID, drawable

MAX_BEAM = 256
MAX_CELLS = 20_000_000     # beam rows x length: the search's back-pointers (16 bytes a cell)
FIRST_CHUNK = 32           # search steps of the first kernel call, doubled up to
MAX_CHUNK = 512            # this, so that the worker count can be measured and Ctrl-C heard
ENDED = {1: "eos", 2: "stop", 3: "length"}   # kernels.beam's kinds


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
                stop=None, keep_stop=False):
    """The ``beam`` best continuations of ``prime`` that the search finds, best first (fewer when
    the vocabulary offers fewer), as :class:`BeamResult`.

    - ``length``: the most characters per continuation (default 200; 1000 when stopping at <EOS>).
    - ``stop_at_eos``: a continuation ends at <EOS> (default: in lines mode). Otherwise <EOS> is
      never part of one, so that every result is text that ``charlm score`` reads back as it is.
    - ``length_penalty``: alpha >= 0; rank by log P / n^alpha (0: by log P; 1: per token).
    - ``stop``, ``keep_stop``: stop strings end a continuation (see :mod:`charlm.generation.stops`).
    """
    length, stop_at_eos, forced = check_options(model, 1, length, prime=prime,
                                                stop_at_eos=stop_at_eos)
    check_beam(beam, length, length_penalty)
    stops = check_stops(model, stop)
    if length == 0:
        return [BeamResult("", 0.0, 0.0, "length", 0)]
    allowed = drawable(model.vocab, model.config.mode)
    allowed[:, EOS_ID] &= stop_at_eos
    search = Search(model.network, beam, length, allowed, stop_table(model.vocab, stops),
                    float(length_penalty))
    chunk = FIRST_CHUNK
    while not search.done:
        search.run(forced, chunk)
        forced = forced[:0]
        chunk = min(2 * chunk, MAX_CHUNK)
    return search.results(model.vocab, stops, keep_stop)


def warm_up(network):
    """Compile (or load from the cache) the search kernel: a call that runs no step."""
    search = Search(network, 2, 1, np.ones((2, network.vocab_size), np.bool_),
                    stop_table(None, ()), 0.0)
    search.run(np.zeros(0, np.int64), 0)


def check_beam(beam, length, length_penalty):
    """Raise UsageError, naming the option, for a beam width or length penalty out of range."""
    if not (isinstance(beam, (int, np.integer)) and not isinstance(beam, bool)
            and 1 <= beam <= MAX_BEAM):
        raise UsageError(f"--beam must be an integer from 1 to {MAX_BEAM} (1 is greedy decoding)")
    if (beam + 1) * length > MAX_CELLS:
        raise UsageError(f"--beam {beam} with --length {length} is too large a search: keep "
                         f"(beam + 1) x length within {MAX_CELLS:,}")
    if not (isinstance(length_penalty, (int, float, np.integer, np.floating))
            and not isinstance(length_penalty, bool) and 0 <= length_penalty <= 10):
        raise UsageError("--length-penalty must be a number from 0 to 10 (0: rank by log P; "
                         "1: by log P per character)")


_tables = weakref.WeakKeyDictionary()     # network -> {workers: weight tables}


def weight_tables(network, workers):
    """The network's weights as the search kernel reads them, packed once per network and worker
    count (a loaded model's weights do not change): packing takes milliseconds, as long as
    dozens of search steps."""
    per_network = _tables.setdefault(network, {})
    if workers not in per_network:
        per_network[workers] = transposed(*pack(network, workers))
    return per_network[workers]


class Search:
    """The state of one beam search (see ``kernels.beam`` for each array) and the kernel calls
    that advance it. K beams, plus the greedy row when K > 1."""

    def __init__(self, network, K, length, allowed, stops, alpha):
        from ..kernels import beam_steps as kernel
        self.kernel = kernel
        self.network, self.K, self.length = network, K, length
        self.allowed, self.alpha = allowed, alpha
        self.stops, self.stop_lengths = stops
        L, H = network.num_layers, network.hidden_size
        B = K + 1 if K > 1 else K
        halves = H % 2 == 0 and H >= MIN_SPLIT_HIDDEN and cores() >= 2
        self.pace = Pace((2, 1) if halves else (1,))
        self.h = np.zeros((2, L, B, H), np.float32)
        self.c = np.zeros((2, L, B, H), np.float32)
        self.rh = np.zeros((L, B, H), np.float32)
        self.rows = np.arange(B, dtype=np.int64)
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
        workers = self.pace.pick()
        from ..kernels.draw import SYNC_STRIDE
        sync = np.zeros(workers * SYNC_STRIDE, np.int64)
        args = (self.network.cell.code, *weight_tables(self.network, workers), self.h, self.c, self.rh, self.rows,
                self.tokens, self.log_p, self.tails, self.finished, self.greedy, self.counts,
                forced, steps, self.length, self.allowed, self.stops, self.stop_lengths,
                self.alpha, self.back_parent, self.back_token, self.back_logp, sync)
        start = time.perf_counter()
        ran = fan_out([lambda k=k: self.kernel.beam_steps(*args, k, workers)
                       for k in range(workers)])[0]
        self.pace.record(workers, len(forced) + ran, time.perf_counter() - start)

    def records(self):
        """The candidates for the results (rows of kernels.beam's FIELDS): the beam's finished
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
