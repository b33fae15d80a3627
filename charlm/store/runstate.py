"""The run state: where a training run stands, what ``--resume`` needs besides the arrays, and
what ``charlm info`` shows. Stored in a checkpoint as the JSON text ``state.json``; this module is
the only place that reads or writes it."""
import dataclasses
import json
import math
from dataclasses import dataclass, field

# How a run draws its dropout masks; a resumed run whose label differs continues with other masks
# than the version that wrote it would have drawn. Now: a splitmix64 stream per (seed, step, batch
# column) (kernels/dropout.py). Earlier: "per step and column", a numpy generator per (seed, step,
# column); and, in the first format, "one generator" whose state the checkpoint kept (key "rng").
DROPOUT_MASKS = "splitmix64 per step and column"


@dataclass
class Evaluation:
    """One validation: its step, the wall time of the run then, the mean training loss since the
    previous one and the validation loss (nats per token; per character for a word model);
    ``best`` if it was the best so far."""
    step: int
    elapsed: float
    train_loss: float | None
    val_loss: float
    best: bool


@dataclass
class RunState:
    step: int = 0                       # optimizer steps taken
    epoch: int = 0                      # the data position: epoch, batch index in the epoch,
    index: int = 0                      # and chunk of a lines-mode batch of long lines
    chunk: int = 0
    epochs_done: float = 0.0            # passes over the training text, the current one's part
                                        # included (as of the last save)
    elapsed: float = 0.0                # seconds of training, earlier runs of a resumed one included
    chars_seen: int = 0                 # training targets read
    history: list = field(default_factory=list)     # [Evaluation]
    best_val_loss: float | None = None
    best_step: int | None = None
    train_loss: float | None = None     # mean training loss over the last validation interval
                                        # (without held-out text: over the run, since it started)
    loss_sum: float = 0.0               # running sum and count of the current interval
    loss_count: int = 0
    eval_seconds: float | None = None   # the latest validation's duration
    clipped_steps: int = 0              # steps on which gradient clipping scaled the gradient
    corpus: dict | None = None          # {"chars", "crc32"} of the training text
    corpus_path: str | None = None      # its absolute path (None: the bundled names), for the
                                        # novelty check of `charlm sample`
    corpus_encoding: str = "utf-8"      # the --encoding it was read with
    dropout_masks: str = DROPOUT_MASKS  # how the run draws them (stack.Network.dropout_masks)
    out_of_time: float | None = None    # the --max-time the run stopped on, its budget spent

    @property
    def validated(self):
        return bool(self.history)

    def close_interval(self):
        """End the current interval of training losses: their mean becomes ``train_loss``."""
        if self.loss_count:
            self.train_loss = self.loss_sum / self.loss_count
        self.loss_sum, self.loss_count = 0.0, 0

    def to_json(self):
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text):
        """Parse and check ``state.json``; raises ValueError naming the first bad entry. Keys this
        version does not know (e.g. ``rng`` of the first format) are ignored."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        state = cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})
        if "dropout_masks" not in data:
            state.dropout_masks = "one generator"
        if "epochs_done" not in data:       # written before it was kept: its whole passes
            state.epochs_done = float(state.epoch)
        for name in ("step", "epoch", "index", "chunk", "chars_seen", "loss_count", "clipped_steps"):
            _check(_count(getattr(state, name)), name)
        for name in ("elapsed", "loss_sum", "epochs_done"):
            _check(_number(getattr(state, name)), name)
        for name in ("best_val_loss", "train_loss", "eval_seconds", "out_of_time"):  # none < 0
            _check(getattr(state, name) is None or _number(getattr(state, name), 0), name)
        _check(state.best_step is None or _count(state.best_step), "best_step")
        _check((state.best_step is None) == (state.best_val_loss is None), "best_step")
        _check(state.corpus is None or (isinstance(state.corpus, dict) and all(
            _count(state.corpus[k]) for k in ("chars", "crc32") if k in state.corpus)), "corpus")
        _check(state.corpus_path is None or isinstance(state.corpus_path, str), "corpus_path")
        _check(isinstance(state.corpus_encoding, str), "corpus_encoding")
        _check(isinstance(state.history, list) and all(isinstance(r, dict) for r in state.history),
               "history")
        try:
            state.history = [Evaluation(**r) for r in state.history]
        except TypeError:
            raise ValueError("history: a record with unexpected fields") from None
        for r in state.history:
            _check(_count(r.step) and _number(r.elapsed) and isinstance(r.best, bool)
                   and (r.train_loss is None or _number(r.train_loss, 0))
                   and _number(r.val_loss, 0),
                   "history")
        return state


def _count(x):
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _number(x, least=-math.inf):
    return (isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
            and x >= least)


def _check(ok, name):
    if not ok:
        raise ValueError(f"'{name}' has an invalid value")
