"""Training: the loop, its schedule, validation, checkpoints, interruption and exact resume.

Everything random is a function of ``seed``: the initial weights, the validation split, the order of
lines and the stream offsets of each epoch (functions of (seed, epoch)), and the dropout masks
(functions of (seed, step, batch column)). Resuming from a checkpoint therefore continues bit for
bit.
"""
import contextlib
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, replace

import numpy as np

from ..store import checkpoint as ckpt
from ..text import corpus as data
from ..scoring import dynamic, passes
from ..scoring.scorer import windowed_loss
from ..network.bidirectional import held_out_log_prob, network_for, shapes_for
from ..config import (COLD_STARTS, DEFAULT_MODEL, EMA_DECAY, Config, default_seq_len,
                      format_duration, optimizer_moments)
from ..errors import CheckpointError, TrainingDiverged, UsageError
from ..network.engine import Engine
from ..kernels import optim
from ..network.stack import Dropout, FlatArrays, init_for_seed
from ..text.prepared import open_corpus
from ..network.parallel import cores
from ..store import outputs
from . import budget
from .reporter import Reporter
from ..store.runstate import DROPOUT_MASKS, Evaluation, RunState
from ..text.vocab import EOS_ID, Vocab, is_label
from ..text import wordcorpus
from ..text import labels

ADAM = dict(beta1=0.9, eps=1e-8)            # beta2 is a setting (Config.beta2)
RMSPROP = dict(alpha=0.95, eps=1e-8)
DEFAULT_EPOCHS = 25
DEFAULT_MAX_TIME = 600.0


# ---- choosing what the user left open ----------------------------------------------------------

def resolve_config(config, corpus):
    """A copy of config with mode, model size, dropout and stop rule chosen where left open for
    the corpus (``data.Corpus`` or ``prepared.PreparedCorpus``). Returns (config, notices) where
    notices explain each choice to the user."""
    notices = []
    if config.mode == "auto":
        mode, reason = corpus.detect_mode()
        notices.append(f"mode: {mode} ({reason}; --mode to override)")
        config = replace(config, mode=mode)
    if config.steps is None and config.epochs is None and config.max_time is None:
        config = replace(config, epochs=DEFAULT_EPOCHS, max_time=DEFAULT_MAX_TIME)
        notices.append(f"training for {DEFAULT_EPOCHS} epochs or {format_duration(DEFAULT_MAX_TIME)}, "
                       "whichever comes first (--steps, --epochs or --max-time to choose)")
    chars = corpus.chars * (1 - config.val_frac)
    if config.hidden_size is None:
        config = replace(config, hidden_size=_auto_hidden(chars, config))
        notices.append(f"model: {config.num_layers}-layer {config.cell.upper()} with "
                       f"{config.hidden_size} units, sized to {chars:,.0f} training characters "
                       "(--hidden to choose)")
    if config.dropout is None:
        config = replace(config, dropout=_auto_dropout(chars, config.hidden_size))
    if config.weight_drop is None:
        config = replace(config, weight_drop=_auto_weight_drop(chars, config.hidden_size))
    if config.seq_len is None:
        config = replace(config, seq_len=default_seq_len(config.mode, config.bidirectional))
    if config.cold_starts is None:
        config = replace(config, cold_starts=COLD_STARTS if config.mode == "stream" else 0.0)
    if config.ema_decay is None:
        config = replace(config, ema_decay=EMA_DECAY if config.val_frac > 0 else 0.0)
    return config, notices


# Training speed of a 2-layer LSTM with 256 units on two cores (measured: tiny Shakespeare, batch
# 50x100); the cost per character grows about as H^2.
CHARS_PER_SEC_AT_256 = 18_000
MIN_EPOCHS_IN_BUDGET = 4


def _auto_hidden(chars, config):
    """Big enough to use the data, small enough to see it often within the time budget: the
    largest of 512, 384, 256 units that still reads the data MIN_EPOCHS_IN_BUDGET times (the
    docs/design.md gives the runs that chose these numbers)."""
    if chars < 100_000:
        return 128
    if config.max_time is None:
        return 256 if chars < 400_000 else 512
    for hidden in (512, 384):
        rate = CHARS_PER_SEC_AT_256 * (256 / hidden) ** 2
        if rate * config.max_time >= MIN_EPOCHS_IN_BUDGET * chars:
            return hidden
    return 256


def _params_per_char(chars, hidden):
    """About the recurrent weights of two LSTM layers (8 H^2) per training character: the measure
    of how soon a model starts to learn the training text by heart."""
    return 8 * hidden * hidden / max(chars, 1)


def _auto_dropout(chars, hidden):
    """More dropout where the model has more weights per training character (docs/design.md
    gives the runs)."""
    for below, dropout in ((0.05, 0.0), (0.25, 0.1), (2.0, 0.15)):
        if _params_per_char(chars, hidden) < below:
            return dropout
    return 0.35


WEIGHT_DROP_FROM = 2.0     # weights per training character from which weight drop is on


def _auto_weight_drop(chars, hidden):
    """Weight drop 0.2 where the model has the most weights per training character (names: about
    4; tiny Shakespeare's thirty-minute model: 2.1), none where it has fewer (tiny Shakespeare's
    ten-minute model: 1.2); docs/design.md gives the runs."""
    return 0.2 if _params_per_char(chars, hidden) >= WEIGHT_DROP_FROM else 0.0


# ---- the learning-rate schedule and the optimizers ---------------------------------------------

EPOCH_DECAY = 0.97


def learning_rate(config, step, epochs_done, time_fraction=None):
    """Linear warm-up over warmup_steps, then a decay to lr * lr_min_frac.

    With a time budget (``time_fraction`` = elapsed / --max-time) the decay is a cosine over the
    budget, or over --epochs if that ends the run first, so the whole budget is used. Otherwise
    it is char-rnn's 3% per epoch, which does not depend on where the run will stop: a run resumed
    with a larger --steps or --epochs continues exactly as if it had been planned that long."""
    low = config.lr * config.lr_min_frac
    if time_fraction is not None:
        done = max(time_fraction, epochs_done / config.epochs if config.epochs else 0.0)
        lr = low + (config.lr - low) * 0.5 * (1.0 + math.cos(math.pi * min(done, 1.0)))
    else:
        lr = max(low, config.lr * EPOCH_DECAY ** epochs_done)
    if config.warmup_steps > 0 and step < config.warmup_steps:
        lr *= (step + 1) / config.warmup_steps
    return lr


class Optimizer:
    """Adam, RMSprop or SGD over the flat parameter buffer, and the moving average of the weights
    with --ema-decay; ``moments`` is its whole state.

    Weight decay is decoupled from the gradient, as in AdamW (Loshchilov & Hutter): each matrix in
    ``decayed`` shrinks by lr * weight_decay before the step; biases are left alone.

    The average starts as the initial weights and follows step t with the decay
    min(ema_decay, (1 + t) / (10 + t)): until that reaches ema_decay (at step 1,790 for 0.995) it
    weighs about the last ninth of the steps so far, so that the initial weights fade as fast as
    the run moves away from them (TensorFlow's ExponentialMovingAverage warms up the same way)."""

    def __init__(self, config, params, moments=None, decayed=()):
        self.name, self.beta2, self.weight_decay = config.optimizer, config.beta2, config.weight_decay
        self.ema_decay = config.ema_decay
        self.decayed = list(decayed)
        if moments:
            self.moments = moments
        else:
            self.moments = {k: np.zeros(params.size, np.float32) for k in optimizer_moments(config)}
            if self.ema_decay:
                self.moments["average"][:] = params

    def step(self, params, grads, lr, scale, t):
        if self.weight_decay > 0.0:
            for matrix in self.decayed:
                matrix *= np.float32(1.0 - lr * self.weight_decay)
        if self.name == "adam":
            optim.adam_update(params, grads, self.moments["m"], self.moments["v"], lr, scale,
                              ADAM["beta1"], self.beta2, ADAM["eps"], t)
        elif self.name == "rmsprop":
            optim.rmsprop_update(params, grads, self.moments["v"], lr, scale, RMSPROP["alpha"],
                                 RMSPROP["eps"])
        else:
            optim.sgd_update(params, grads, lr, scale)
        if self.ema_decay:
            optim.average_update(self.moments["average"], params,
                                 min(self.ema_decay, (1.0 + t) / (10.0 + t)))

    def weights_in_use(self, params):
        """The weights that validation reads, and keeps as the best: the average, if any."""
        return self.moments.get("average", params)


# ---- the data of a run --------------------------------------------------------------------------

@dataclass
class Dataset:
    vocab: Vocab
    train: object            # StreamBatches or LineBatches
    val: object              # stream mode: the validation text's token ids; lines mode: a list
                             # of the validation lines' token ids
    val_tokens: int          # tokens that validation predicts (0: no validation)
    train_chars: int
    notices: list
    val_chars: int = 0           # a word model: validation's characters (<EOS> as one), and the
    val_unk_nats: float = 0.0    # nats its <UNK>s pay for their spelling (charlm.text.words)
    chars_per_token: float = 1.0     # of the training text: train's chars/s from its tokens/s


def build_dataset(config, corpus, vocab):
    """The training batches and validation data of a corpus (``data.Corpus`` in memory, or a
    ``prepared.PreparedCorpus`` read through a memory map), shrinking the batch if the corpus is
    short; validation keeps the first ``val_max_chars`` held-out characters. Returns (config,
    dataset) where config holds the batch shape actually used."""
    notices = []
    ids = corpus.ids(vocab)
    cap = config.val_max_chars or None
    if config.mode == "lines":
        spans = corpus.line_spans()
        train_rows, val_rows = data.split_line_indices(len(spans), config.val_frac, config.seed)
        if not len(train_rows):
            raise data.CorpusError("the corpus has no non-empty line to train on")
        B, T, notice = data.fit_batch_shape("lines", len(train_rows), config.batch_size, config.seq_len)
        train = data.LineBatches(data.Lines(ids, spans[train_rows]), B, T, config.seed)
        val_spans = spans[val_rows]
        val = list(data.Lines(ids, data.lines_within(val_spans, cap)))
        if getattr(corpus, "labels", None):         # each example starts with its label
            config, train, val = labels.label_lines(config, corpus, vocab, train, val,
                                                    train_rows, val_rows)
        held_out = int(val_spans[:, 1].sum()) + len(val_spans)
        val_tokens = sum(len(line) + 1 for line in val)
        train_chars = int(spans[train_rows, 1].sum()) + len(train_rows)
    else:
        train_ids, val_ids = data.split_stream_ids(ids, config.val_frac)
        B, T, notice = data.fit_batch_shape("stream", len(train_ids), config.batch_size, config.seq_len)
        train = data.StreamBatches(train_ids, B, T, config.seed, config.cold_starts)
        val = np.asarray(val_ids[:cap], np.int32)
        held_out, val_tokens = len(val_ids), len(val)
        train_chars = len(train_ids) - 1
    if notice:
        notices.append(notice)
    if val_tokens < held_out:
        notices.append(f"validation reads the first {val_tokens:,} of the {held_out:,} held-out "
                       "characters (--val-max-chars)")
    config = replace(config, batch_size=B, seq_len=T)
    dataset = Dataset(vocab, train, val, val_tokens, train_chars, notices)
    return config, wordcorpus.char_figures(config, corpus, dataset)


# ---- the trainer ----------------------------------------------------------------------------------

VALIDATIONS_PER_RUN = 20    # validate at every 5% of the budget (steps, epochs or time) ...
MAX_VALIDATION_SHARE = 0.1  # ... unless that would spend more than this share of a timed run on it


class Trainer:
    """One training run: a network, its optimizer and data, and the run state to resume it."""

    def __init__(self, config, dataset, out, params=None, saved=None, reporter=None, corpus_id=None):
        self.config, self.dataset, self.out = config, dataset, out
        self.reporter = reporter or Reporter()
        V = len(dataset.vocab)
        self.params = FlatArrays(shapes_for(config, V))
        if params is None:
            init_for_seed(self.params, config.cell, config.seed)
        else:
            self.params.flat[:] = params
        self.grads = self.params.like()
        self.network = network_for(config, V, self.params)
        self.engine = Engine(self.network)
        self.optimizer = Optimizer(config, self.params.flat, saved.moments if saved else None,
                                   self.params.matrices())
        self.run_state = saved.run if saved else RunState(corpus=corpus_id)
        self.best = None            # the best weights so far; None until a validation has run
        self.carry = saved.carry if saved else None
        self.started = None
        self.save_seconds = 0.0
        self.elapsed_before = self.run_state.elapsed   # seconds of training in earlier runs
        self.last_validation = (self.progress(), self.elapsed)
        self.stop_requested = False
        self.stop_reason = None
        self.chars_per_sec = None
        self.lock = None            # outputs.OutputLock on out, released when the run ends

    # -- progress and stopping

    @property
    def elapsed(self):
        """Wall time of the run so far, earlier runs of a resumed one included."""
        now = time.perf_counter()
        return self.elapsed_before + (now - self.started if self.started is not None else 0.0)

    @property
    def epochs_done(self):
        return self.run_state.epoch + self.run_state.index / len(self.dataset.train)

    def progress(self):
        """Fraction of the budget used: the largest of the step, epoch and time fractions."""
        c, done = self.config, []
        if c.steps:
            done.append(self.run_state.step / c.steps)
        if c.epochs:
            done.append(self.epochs_done / c.epochs)
        if c.max_time:
            done.append(self.elapsed / c.max_time)
        return max(done)

    def _out_of_budget(self, step_seconds):
        c = self.config
        if c.steps is not None and self.run_state.step >= c.steps:
            return "steps"
        if c.patience and self._validations_since_best() >= c.patience:
            return "no improvement"
        if c.epochs is not None and self.epochs_done >= c.epochs - 1e-9:
            return "epochs"
        if c.max_time is not None and self.chars_per_sec is not None:
            # keep room for the final validation: --max-time is a budget that includes it. Until
            # a step of this run has measured the speed there is nothing to reserve from: prepare
            # refused a budget that cannot fit one step and a validation (budget.check_time), so
            # the first step is always taken
            reserve = self._eval_estimate() + step_seconds + 2 * self.save_seconds
            if self.elapsed + reserve > c.max_time:
                return "time"
        return None

    def finished_already(self):
        """Why a resumed run has nothing left to do (the reason, as ``run`` returns it), or None:
        its budget is spent and, with a validation set, its last step has been validated. Such a
        run writes nothing: its checkpoint is left exactly as it is."""
        c, rs = self.config, self.run_state
        if rs.step == 0:
            return None
        history = rs.history
        if self.dataset.val_tokens and (not history or history[-1].step != rs.step):
            return None         # the final validation is still to run (e.g. after Ctrl-C)
        if c.steps is not None and rs.step >= c.steps:
            return "steps"
        if c.patience and history and self._validations_since_best() >= c.patience:
            return "no improvement"
        if c.epochs is not None and self.epochs_done >= c.epochs - 1e-9:
            return "epochs"
        if c.max_time is not None and (self.elapsed >= c.max_time or rs.out_of_time == c.max_time):
            return "time"
        return None

    def _validations_since_best(self):
        """Validations since the best one: the run stops early when --patience of them pass
        (validation rising while training loss falls is the model learning the training text)."""
        history = self.run_state.history
        best = max((i for i, record in enumerate(history) if record.best), default=len(history) - 1)
        return len(history) - 1 - best

    def _eval_estimate(self):
        """Seconds a validation will take: 1.2 times the last one, else (none has run yet)
        1.5 times the held-out characters at twice the training speed just measured, since
        validation is a forward pass alone (0 before any step has measured it)."""
        if not self.dataset.val_tokens:
            return 0.0
        if self.run_state.eval_seconds is not None:
            return 1.2 * self.run_state.eval_seconds
        if not self.chars_per_sec:
            return 0.0
        return 1.5 * self.dataset.val_tokens / (2.0 * self.chars_per_sec)

    def _validation_due(self):
        """--eval-every N: every N steps. Otherwise each time the run passes another 5% of its
        budget; in a timed run, not before validation's share of the time since the last one
        would drop to MAX_VALIDATION_SHARE (a large validation set then validates less often)."""
        if not self.dataset.val_tokens:
            return False
        if self.config.eval_every:
            return self.run_state.step % self.config.eval_every == 0
        last_progress, last_elapsed = self.last_validation
        if math.floor(self.progress() * VALIDATIONS_PER_RUN) <= math.floor(last_progress * VALIDATIONS_PER_RUN):
            return False
        if self.config.max_time is None:
            return True
        if self.chars_per_sec is None and self.run_state.eval_seconds is None:
            return False        # the first steps measure the speed before validation is costed
        cost = self._eval_estimate() / 1.2
        return cost <= MAX_VALIDATION_SHARE * (self.elapsed - last_elapsed)

    # -- the loop

    def run(self):
        """Train until the budget is spent or a stop is requested; returns the reason. A resumed
        run with nothing left to do (:meth:`finished_already`) returns ``"already " + reason``
        and writes nothing."""
        done = self.finished_already()
        if done is not None:
            self.stop_reason = "already " + done
            self.release()
            return self.stop_reason
        restore = self._catch_interrupts()
        self.started = time.perf_counter()
        try:
            self.reporter.start(self)
            self._loop()
            history = self.run_state.history
            if self.stop_reason != "interrupted" and self.dataset.val_tokens and \
                    (not history or history[-1].step != self.run_state.step):
                self._evaluate()
            elif not self.dataset.val_tokens:
                self.run_state.close_interval()     # nothing held out: the interval is the run
            if self.stop_reason == "time":          # what a resume with this budget finds spent
                self.run_state.out_of_time = self.config.max_time
            self.save()
            self.reporter.finish(self)
            return self.stop_reason
        finally:
            self.elapsed_before, self.started = self.elapsed, None
            self.run_state.elapsed = self.elapsed_before
            restore()
            self.release()

    def release(self):
        """Let another run write ``out`` (the lock taken by :func:`new_trainer`)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def _loop(self):
        step_seconds = 0.0
        last_saved = self.run_state.step
        while True:
            self.stop_reason = self._stop_reason(step_seconds)
            if self.stop_reason:
                return
            started = time.perf_counter()
            loss, tokens = self._train_step()
            step_seconds = time.perf_counter() - started
            self.chars_per_sec = tokens / step_seconds if step_seconds > 0 else None
            self.reporter.step(self, loss)
            if self._validation_due():
                self._evaluate()
                self.save()
                last_saved = self.run_state.step
            elif self.config.checkpoint_every and self.run_state.step - last_saved >= self.config.checkpoint_every:
                self.save()
                last_saved = self.run_state.step

    def _stop_reason(self, step_seconds):
        """Why the run stops before another step, or None (a data-parallel run agrees on it)."""
        return "interrupted" if self.stop_requested else self._out_of_budget(step_seconds)

    def _next_batch(self):
        """(x, y, state) of the current position; advances the position after the last chunk."""
        train, rs = self.dataset.train, self.run_state
        if isinstance(train, data.StreamBatches):
            x, y = train.batch(rs.epoch, rs.index)
            state = self.carry if rs.index > 0 else None
            if state is not None and state.shape[2] == x.shape[1]:    # else refused below
                state = train.restarted(state, rs.epoch, rs.index)
            advance = True
        else:
            chunks = train.batch(rs.epoch, rs.index)
            x, y = chunks[rs.chunk]
            state = self.carry if rs.chunk > 0 else None
            rs.chunk += 1
            advance = rs.chunk == len(chunks)
        if advance:
            rs.chunk = 0
            rs.index += 1
            if rs.index == len(train):
                rs.epoch, rs.index = rs.epoch + 1, 0
        if state is None:
            state = self.network.zero_state(x.shape[1])
        elif state.shape[2] != x.shape[1]:
            raise CheckpointError(f"{self.out}: the saved recurrent state has {state.shape[2]} "
                                  f"columns, the batch it continues has {x.shape[1]}")
        return x, y, state

    def _batch_gradients(self):
        """The next batch's gradients into self.grads; returns (mean loss, target count)."""
        c = self.config
        x, y, state = self._next_batch()
        loss, count, self.carry = self.network.loss_and_gradients(
            x, y, state, self.grads, Dropout.of(c), mask_key=(c.seed, self.run_state.step))
        return loss, count

    def _time_fraction(self):
        """elapsed / --max-time, which the learning rate of a timed run follows."""
        return self.elapsed / self.config.max_time if self.config.max_time else None

    def _train_step(self):
        c, rs = self.config, self.run_state
        loss, count = self._batch_gradients()
        if not math.isfinite(loss):
            raise TrainingDiverged(
                f"the loss became {loss} at step {rs.step + 1}; {self.out} keeps the last good "
                f"checkpoint. Try a lower --lr (e.g. {c.lr / 3:.2g}) or a smaller --clip (e.g. 1)")
        norm = math.sqrt(optim.squared_norm(self.grads.flat))
        if not math.isfinite(norm):
            raise TrainingDiverged(
                f"the gradient became {norm} at step {rs.step + 1}; {self.out} keeps the last "
                f"good checkpoint. Try a lower --lr (e.g. {c.lr / 3:.2g}) or --clip 1")
        scale = min(1.0, c.clip / (norm + 1e-6)) if c.clip > 0 else 1.0
        rs.clipped_steps += scale < 1.0
        lr = learning_rate(c, rs.step, self.epochs_done, self._time_fraction())
        rs.step += 1
        self.optimizer.step(self.params.flat, self.grads.flat, lr, scale, rs.step)
        tokens = int(count)
        rs.chars_seen += tokens
        rs.loss_sum += loss * tokens
        rs.loss_count += tokens
        return loss, tokens

    def evaluate(self):
        """Mean validation loss in nats per token (per character for a word model, each <UNK>
        paying for its spelling), with no dropout, or None without a validation set:
        the loss of the held-out text read in order from <EOS> (stream mode), or of the held-out
        lines, each an example of its own (lines mode), as `charlm score --file` computes them;
        for a bidirectional model, the cloze loss per character of the same text."""
        if not self.dataset.val_tokens:
            return None
        c = self.config
        if c.bidirectional:
            log_prob, count = held_out_log_prob(self.network, c.mode, self.dataset.val, c.seq_len)
        elif c.mode == "stream":
            log_prob, count = passes.stream_log_prob(self.engine, self.dataset.val)
        else:       # a labelled model reads each line with its label
            rows = self.dataset.val.rows if c.labels else None
            log_prob, count = passes.lines_log_prob(self.engine, self.dataset.val, rows)
        if self.dataset.val_chars:      # a word model: per character, <UNK>s spelt out
            return (-log_prob + self.dataset.val_unk_nats) / self.dataset.val_chars
        return -log_prob / count

    def _evaluate(self):
        rs = self.run_state
        started = time.perf_counter()
        weights = self.optimizer.weights_in_use(self.params.flat)
        with self._reading(weights):
            val = self.evaluate()
        rs.eval_seconds = time.perf_counter() - started
        self.last_validation = (self.progress(), self.elapsed)
        rs.close_interval()
        improved = rs.best_val_loss is None or val < rs.best_val_loss
        if improved:
            rs.best_val_loss, rs.best_step = val, rs.step
            self.best = weights.copy()
        record = Evaluation(rs.step, round(self.elapsed, 3), rs.train_loss, val, improved)
        rs.history.append(record)
        self.reporter.evaluated(self, record)

    @contextlib.contextmanager
    def _reading(self, weights):
        """Let the network read ``weights`` (the average of --ema-decay) in place of the latest
        ones for the duration, and put the latest back."""
        if weights is self.params.flat:
            yield
            return
        latest = self.params.flat.copy()
        self.params.flat[:] = weights
        try:
            yield
        finally:
            self.params.flat[:] = latest

    def held_out_figures(self):
        """The figures of the held-out text that ``val_windows`` and ``val_dynamic`` ask for, of
        the best weights, as ``charlm score --windows`` and ``--dynamic`` compute them for a file
        of that text: nanoGPT's windowed loss (12,800 windows, seed 0) and dynamic evaluation's
        loss with the default settings, nats per character, each with its settings. Run after
        training, outside its time budget: the windows cost as much as scoring 12,800 x N
        characters."""
        c, figures = self.config, {}
        if not (c.val_windows or c.val_dynamic):
            return figures
        weights = self._weights_to_keep()
        network = network_for(c, len(self.dataset.vocab), FlatArrays(self.params.shapes,
                                                                      weights.copy()))
        if c.val_windows:
            windowed = windowed_loss(Engine(network), self.dataset.val, c.val_windows)
            figures["val_windowed_loss"] = windowed.loss
            figures["val_windows"] = windowed.to_json()
        if c.val_dynamic:
            settings = dynamic.Settings()
            ids = np.concatenate([[EOS_ID], self.dataset.val]).astype(np.int32)
            with dynamic.Adapter(network, settings) as adapter:
                log_prob, tokens, _ = dynamic.adapt_sequence(adapter, ids)
            figures["val_dynamic_loss"] = -log_prob / tokens
            figures["val_dynamic"] = dict(settings.to_json(), segments=adapter.steps)
        return figures

    # -- checkpoints

    def save(self):
        """The weights to keep (:meth:`_weights_to_keep`) and the latest state."""
        best = FlatArrays(self.params.shapes, self._weights_to_keep())
        state = ckpt.TrainingState(self.params.flat, self.optimizer.moments, self.carry,
                                   self.run_state)
        self.run_state.elapsed = self.elapsed
        self.run_state.epochs_done = self.epochs_done
        started = time.perf_counter()
        ckpt.save(self.out, ckpt.Checkpoint(self.config, self.dataset.vocab, best, state))
        self.save_seconds = time.perf_counter() - started

    def _weights_to_keep(self):
        """The best weights by validation, or until a validation has run (or without a
        validation split) the latest weights, as the spec's checkpoint says."""
        return self.best if self.best is not None else self.params.flat

    def _catch_interrupts(self):
        """First Ctrl-C: finish the current step, save, stop. A second one stops at once."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def handler(signum, frame):
            if self.stop_requested:
                signal.signal(signal.SIGINT, previous)
                raise KeyboardInterrupt
            self.stop_requested = True
            self.reporter.notice("interrupted: saving the latest state (Ctrl-C again to quit at once)")

        previous = signal.signal(signal.SIGINT, handler)
        return lambda: signal.signal(signal.SIGINT, previous)


# ---- the entry point ------------------------------------------------------------------------------

def new_trainer(corpus=None, out=DEFAULT_MODEL, resume=False, force=False, encoding="utf-8",
                reporter=None, **options):
    """Read the corpus, resolve the config (or restore it with resume) and build the Trainer.

    Before any of that, --out is checked (it can be written, it is not the corpus) and locked:
    the Trainer holds ``outputs.OutputLock`` on it until its run ends, ``release`` is called or
    it is dropped, and another run meanwhile is refused with ``OutputInUse``. Also refused
    before anything large is allocated: a run that needs more memory than is available or a
    --max-time that cannot fit a step and a validation (:func:`check_needs`)."""
    reporter = reporter or Reporter()
    options = {k: v for k, v in options.items() if v is not None}
    labelled = options.pop("labelled", None)    # True (CORPUS of LABEL<TAB>TEXT) or [(name, file)]
    if labelled:
        options["mode"] = labels.lines_mode(options.get("mode"), options.get("bidirectional"))
    if resume and force:
        raise UsageError("--resume and --force contradict each other: --resume continues the run "
                         f"in {out}, --force replaces it")
    # before any work: --out can be written, is not the corpus, and no other run writes it
    outputs.check_writable(out, "--out")
    outputs.refuse_inputs(out, "--out", [(corpus, "the corpus")])
    lock = outputs.OutputLock(out).acquire()
    try:
        if os.path.exists(out) and not (resume or force):
            raise UsageError(f"{out} exists: add --resume to continue its training, --force to "
                             "replace it, or choose another --out")
        if labelled and labelled is not True and corpus is None:     # the --label NAME=FILE files
            outputs.refuse_inputs(out, "--out", [(path, f"the --label {name} file")
                                                 for name, path in labelled])
        source = (labels.read_corpus(corpus, labelled, encoding) if labelled else
                  open_corpus(corpus, encoding, options.get("mode", "auto"), reporter))
        if resume:
            trainer = _resume(out, source, options, reporter)
        else:
            refuse_validation_options(options.get("val_frac"), options)
            config = Config(**options).validate()
            config, notices = resolve_config(config, source)
            config, source, vocab = wordcorpus.tokenized(config, source, notices, reporter)
            if all(is_label(t) for t in vocab.tokens[2:]):   # only <EOS>, <UNK> and labels
                raise UsageError(f"--min-count {config.min_count} leaves no character of the "
                                 "corpus a token of its own: nothing would be learnt; lower it")
            config, dataset = build_dataset(config, source, vocab)
            check_needs(config, dataset)
            for message in notices + dataset.notices:
                reporter.notice(message)
            trainer = Trainer(config, dataset, out, reporter=reporter,
                              corpus_id=source.fingerprint())
    except BaseException:
        lock.release()
        raise
    trainer.lock = lock
    trainer.run_state.corpus_path = None if corpus is None else os.path.abspath(corpus)
    trainer.run_state.corpus_encoding = encoding
    return trainer


def check_needs(config, dataset):
    """Refuse, before anything large is allocated, a run that needs more memory than there is, a
    --max-time that cannot fit one step and a validation (:mod:`charlm.training.budget`), or
    held-out figures that do not apply (:func:`check_held_out_figures`)."""
    V = len(dataset.vocab)
    parameters = sum(int(np.prod(shape)) for _, shape in shapes_for(config, V))
    threads = cores()
    budget.check_memory(config, V, parameters, threads)
    budget.check_time(config, V, dataset.val_tokens, threads)
    check_held_out_figures(config, dataset)
    if config.cold_starts and config.mode != "stream":
        raise UsageError("--cold-starts restarts streams of a stream-mode run; in lines mode every "
                         "line already starts from the zero state")
    if config.ema_decay and not config.val_frac:
        raise UsageError("--ema-decay averages the weights that validation reads; with --val-frac "
                         "0 nothing is validated and the latest weights are kept: drop one of them")


def refuse_validation_options(val_frac, options):
    """UsageError for options given that act on validation when --val-frac 0 holds nothing out:
    they would be ignored (--patience 0 and --val-max-chars 0 ask for nothing)."""
    acting = [f"--{k.replace('_', '-')}" for k in ("eval_every", "patience", "val_max_chars")
              if options.get(k)]
    if val_frac == 0 and acting:
        raise UsageError(f"{', '.join(acting)} act{'s' * (len(acting) == 1)} on validation, and "
                         "--val-frac 0 holds nothing out: drop one or the other")


def check_held_out_figures(config, dataset):
    """Refuse, before training, the figures of the held-out text asked for after it
    (``val_windows``, ``val_dynamic``) where they do not apply: they read a left-to-right
    character model's held-out stream, and windows need more tokens than a window."""
    if not (config.val_windows or config.val_dynamic):
        return
    asked = "--val-windows" if config.val_windows else "--val-dynamic"
    if config.mode != "stream" or config.bidirectional or config.tokens != "chars":
        raise UsageError(f"{asked} scores the held-out text of a left-to-right character model in "
                         "stream mode; for this model, score a held-out file with charlm score")
    if not dataset.val_tokens:
        raise UsageError(f"{asked} scores the held-out text, and --val-frac 0 holds none out")
    if config.val_windows and config.val_windows >= dataset.val_tokens:
        raise UsageError(f"--val-windows {config.val_windows} needs a held-out text longer than "
                         f"one window; it has {dataset.val_tokens:,} characters")


RESUMABLE = ("steps", "epochs", "max_time", "checkpoint_every", "eval_every", "patience",
             "val_windows", "val_dynamic")


STOP_RULES = {"steps": "--steps", "epochs": "--epochs", "max_time": "--max-time"}


def _stop_rules_replaced(saved, given, reporter):
    """The saved stop rules that a resume's own rules replace, as None: ``--resume --steps
    5000`` trains to step 5000, whatever --epochs or --max-time the run had (and the learning
    rate follows the rules of the resumed run: docs/training.md)."""
    if not any(k in given for k in STOP_RULES):
        return {}
    dropped = [k for k in STOP_RULES if k not in given and getattr(saved, k) is not None]
    if dropped:
        asked = ", ".join(STOP_RULES[k] for k in STOP_RULES if k in given)
        old = ", ".join(f"{STOP_RULES[k]} {_rule_value(saved, k)}" for k in dropped)
        reporter.notice(f"--resume with {asked}: the run's own {old} no longer apply")
    return {k: None for k in dropped}


def _rule_value(config, rule):
    """A stop rule's value as the command line writes it (10m00s, 25, 5000)."""
    value = getattr(config, rule)
    return format_duration(value) if rule == "max_time" else f"{value:g}"


def _check_position(out, run, train):
    """CheckpointError unless the run state's place in the data (batch ``index`` of its epoch,
    and ``chunk`` of a lines-mode batch) is one that the corpus's batches have."""
    fits = run.index < len(train)
    if fits and isinstance(train, data.LineBatches):
        fits = run.chunk < len(train.batch(run.epoch, run.index))
    elif fits:
        fits = run.chunk == 0
    if not fits:
        raise CheckpointError(f"{out}: its training state stands at batch {run.index}, chunk "
                              f"{run.chunk} of an epoch, which its corpus's {len(train):,} "
                              "batches do not have; the checkpoint is damaged")


def _resume(out, corpus, options, reporter):
    if not os.path.exists(out):
        raise UsageError(f"--resume: there is no {out} to continue (train without --resume first)")
    saved = ckpt.load(out, with_training_state=True)
    labels.check_resume(out, saved.config, corpus)
    if saved.training is None:
        raise CheckpointError(f"{out} has no training state to resume from (only weights)")
    run = saved.training.run
    if run.corpus not in (None, corpus.fingerprint()):
        source = run.corpus_path or ("its --label NAME=FILE files, in the order given then"
                                     if saved.config.labels else "the bundled names")
        raise UsageError(f"--resume: this is not the corpus {out} was trained on ({source}, "
                         f"read as {run.corpus_encoding}): give that one")
    ignored = sorted(k for k, v in options.items() if v is not None and k not in RESUMABLE
                     and getattr(saved.config, k) != v)
    if ignored:
        reporter.notice("--resume keeps the run's settings; ignored: " + ", ".join(ignored))
    if run.dropout_masks != DROPOUT_MASKS and saved.config.dropout > 0:
        reporter.notice(f"{out} was written by an earlier charlm, which drew its dropout masks "
                        f"another way ({run.dropout_masks}); the run continues with "
                        "this version's masks, so it is not the run the earlier version would have "
                        "continued")
    run.dropout_masks = DROPOUT_MASKS       # how it goes on from here
    given = {k: options[k] for k in RESUMABLE if options.get(k) is not None}
    refuse_validation_options(saved.config.val_frac, given)
    given.update(_stop_rules_replaced(saved.config, given, reporter))
    config = replace(saved.config, **given).validate()
    _, dataset = build_dataset(config, wordcorpus.reopened(corpus, saved.vocab, reporter),
                               saved.vocab)
    check_needs(config, dataset)
    _check_position(out, run, dataset.train)
    trainer = Trainer(config, dataset, out, saved.training.params, saved.training, reporter)
    if run.validated:
        trainer.best = saved.weights.flat.copy()
    return trainer
