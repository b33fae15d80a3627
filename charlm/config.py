"""Configuration: one dataclass that holds every setting of a run and travels in the checkpoint."""
import dataclasses
import json
import re
import typing
from dataclasses import dataclass

from .network.celltypes import CELLS
from .errors import UsageError

DEFAULT_MODEL = "charlm.npz"     # the checkpoint every command writes and reads unless told
MODES = ("auto", "stream", "lines")
TOKENS = ("chars", "words")      # the token kinds: charlm.text.vocab.Vocab, charlm.text.words
OPTIMIZER_MOMENTS = {"adam": ("m", "v"), "rmsprop": ("v",), "sgd": ()}   # the state of each
OPTIMIZERS = tuple(OPTIMIZER_MOMENTS)
# A run with a validation split keeps an exponential moving average of the weights with this decay
# per step, and validates and keeps the average: it holds what the last steps learnt without the
# noise of the last one (docs/design.md gives the runs).
EMA_DECAY = 0.995
# Stream mode: the share of the streams restarted from the zero state at each batch. Carried state
# alone leaves a model unpractised at reading from a cold start, as nanoGPT's windows and a short
# text are read; docs/design.md gives the runs.
COLD_STARTS = 0.1


@dataclass
class Config:
    """Every setting of a training run. Fields left at ``None`` are chosen from the corpus and the
    time budget when training starts (see :func:`charlm.training.trainer.resolve_config`); a checkpoint always
    holds the resolved values."""

    cell: str = "lstm"
    hidden_size: int | None = None
    num_layers: int = 2
    bidirectional: bool = False      # a cloze model for `charlm fill` (charlm.network.bidirectional)
    dropout: float | None = None
    locked_dropout: bool = False     # one dropout mask per sequence for all its steps
    weight_drop: float | None = None  # DropConnect on W_h (charlm.network.stack.Dropout)
    cold_starts: float | None = None  # stream mode: share of the streams each batch restarts
                                      # from the zero state (charlm.text.corpus.StreamBatches)
    mode: str = "auto"
    seq_len: int | None = None       # 50 for a left-to-right model of a stream, else 100
    batch_size: int = 50
    optimizer: str = "adam"
    lr: float = 5e-3
    lr_min_frac: float = 0.02        # the cosine schedule decays to lr * lr_min_frac
    ema_decay: float | None = None   # the average of the weights that validation reads (0: none)
    beta2: float = 0.99              # Adam's decay of the squared-gradient average
    weight_decay: float = 0.1        # decoupled (AdamW): weight matrices shrink by lr * weight_decay a step
    warmup_steps: int = 0            # steps of linear warm-up (none by default: docs/design.md)
    clip: float = 5.0
    steps: int | None = None
    epochs: float | None = None
    max_time: float | None = None    # seconds
    val_frac: float = 0.1
    val_max_chars: int = 1_000_000   # validation reads at most this many held-out characters (0: all)
    val_windows: int = 0             # after training: nanoGPT's windowed figure of the held-out
                                     # text, windows of this many targets (0: none)
    val_dynamic: bool = False        # after training: its dynamic-evaluation figure
    eval_every: int | None = None
    patience: int = 5                # stop after this many validations without a new best (0: never)
    checkpoint_every: int | None = None
    min_count: int = 1
    seed: int = 1337
    tokens: str = "chars"            # how text is cut: characters, or words (charlm.text.words)
    vocab_size: int | None = None    # words: tokens kept besides <EOS>, <UNK> (None: sized to the corpus)
    labels: list | None = None       # a labelled corpus's label names, in id order (charlm.text.labels)
    label_counts: list | None = None  # training examples of each label: the classifier's prior

    def validate(self):
        """Raise UsageError, naming the option, for any value out of range, or naming the
        setting for a value of the wrong type (what a checkpoint could not be read back with)."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not _json_fits(value, f.type):
                raise UsageError(f"{f.name} is {value!r}, where {_kinds(f.type)} belongs")
        checks = [
            (self.cell in CELLS, "--cell", f"must be one of {', '.join(CELLS)}"),
            (self.mode in MODES, "--mode", f"must be one of {', '.join(MODES)}"),
            (self.optimizer in OPTIMIZERS, "--optimizer", f"must be one of {', '.join(OPTIMIZERS)}"),
            (self.hidden_size is None or 1 <= self.hidden_size <= 8192, "--hidden", "must be between 1 and 8192"),
            (1 <= self.num_layers <= 16, "--layers", "must be between 1 and 16"),
            (self.dropout is None or 0.0 <= self.dropout < 1.0, "--dropout", "must be in [0, 1)"),
            (self.weight_drop is None or 0.0 <= self.weight_drop < 1.0, "--weight-drop",
             "must be in [0, 1)"),
            (self.cold_starts is None or 0.0 <= self.cold_starts <= 1.0, "--cold-starts",
             "must be in [0, 1]"),
            (self.seq_len is None or 1 <= self.seq_len <= 100_000, "--seq-len",
             "must be between 1 and 100000"),
            (1 <= self.batch_size <= 100_000, "--batch-size", "must be between 1 and 100000"),
            (0.0 < self.lr < 10.0, "--lr", "must be in (0, 10)"),
            (0.0 <= self.lr_min_frac <= 1.0, "lr_min_frac", "must be in [0, 1]"),
            (0.0 < self.beta2 < 1.0, "--beta2", "must be in (0, 1)"),
            (self.ema_decay is None or 0.0 <= self.ema_decay < 1.0, "--ema-decay",
             "must be in [0, 1) (0: no average)"),
            (0.0 <= self.weight_decay and self.lr * self.weight_decay < 1.0, "--weight-decay",
             "must be >= 0, and below 1 / --lr"),
            (self.clip >= 0.0, "--clip", "must be >= 0 (0 turns clipping off)"),
            (self.steps is None or self.steps >= 1, "--steps", "must be >= 1"),
            (self.epochs is None or self.epochs > 0, "--epochs", "must be > 0"),
            (self.max_time is None or self.max_time > 0, "--max-time", "must be > 0"),
            (0.0 <= self.val_frac < 1.0, "--val-frac", "must be in [0, 1)"),
            (self.val_max_chars >= 0, "--val-max-chars", "must be >= 0 (0 validates on all of it)"),
            (self.val_windows >= 0, "--val-windows", "must be >= 0 (0: no windowed figure)"),
            (self.eval_every is None or self.eval_every >= 1, "--eval-every", "must be >= 1"),
            (0 <= self.patience <= 1_000_000, "--patience", "must be >= 0 (0 never stops early)"),
            (self.checkpoint_every is None or self.checkpoint_every >= 1, "--checkpoint-every", "must be >= 1"),
            (self.min_count >= 1, "--min-count", "must be >= 1"),
            (self.tokens in TOKENS, "--tokens", f"must be one of {', '.join(TOKENS)}"),
            (self.vocab_size is None or self.vocab_size >= 1, "--vocab-size", "must be >= 1"),
            (self.vocab_size is None or self.tokens == "words", "--vocab-size",
             "applies to a word model (--tokens words)"),
            (0 <= self.seed < 2**63, "--seed", "must be between 0 and 2^63 - 1"),
        ]
        for ok, option, rule in checks:
            if not ok:
                raise UsageError(f"{option} {rule}")
        return self

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text):
        """Build from a checkpoint's JSON; keys this version does not know are ignored, and a
        setting added since the checkpoint was written takes the value its run had in effect.
        Values are not checked here: :meth:`validate` checks their types and ranges."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("config is not a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        if data.get("tokens", "chars") not in TOKENS:     # none: a character model
            raise ValueError(f"its tokens are {data['tokens']!r}, a kind this charlm does not "
                             f"read (it reads {', '.join(TOKENS)})")
        return cls(**{**BEFORE_THE_SETTING, **{k: v for k, v in data.items() if k in names}})


JSON_KINDS = {int: "a whole number", float: "a number", str: "a string", bool: "true or false",
              list: "a list", type(None): "null"}


def _kinds(annotation):
    return " or ".join(JSON_KINDS[t] for t in typing.get_args(annotation) or (annotation,))


def _json_fits(value, annotation):
    """Whether a JSON value can stand for a field of this type: a whole number for an int, any
    number for a float (never true or false), a string for a str."""
    allowed = typing.get_args(annotation) or (annotation,)
    if value is None or isinstance(value, bool):
        return type(value) in allowed
    if isinstance(value, int) and float in allowed:
        return True
    return isinstance(value, tuple(t for t in allowed if t is not type(None)))


# What a run did before each of these settings existed: a checkpoint without the key resumes so.
BEFORE_THE_SETTING = {"beta2": 0.999, "weight_decay": 0.0, "weight_drop": 0.0, "cold_starts": 0.0,
                      "ema_decay": 0.0}


def optimizer_moments(config):
    """The names of the arrays, each the size of the weights, that a run's optimizer keeps and a
    checkpoint saves for --resume: its optimizer's moments and, with --ema-decay, the average."""
    return OPTIMIZER_MOMENTS[config.optimizer] + (("average",) if config.ema_decay else ())


def default_seq_len(mode, bidirectional=False):
    """50 steps of backpropagation for a left-to-right model of a stream: twice the updates of 100
    for the same characters read, which learns more in a time budget (docs/design.md gives
    the runs; the state still carries across batches). 100 where a chunk is a unit of its own: a
    line's piece in lines mode, the right context a bidirectional model sees."""
    return 50 if mode == "stream" and not bidirectional else 100


def recipe_text(dropout, locked=False, weight_drop=0.0, cold_starts=0.0, ema_decay=0.0):
    """A run's regularisers and averaging in words: "dropout 0.15", "locked", the weight drop, the
    cold starts and the average of the weights when they are on."""
    text = f"dropout {dropout:g}" + (" locked" if locked else "")
    text += f", weight drop {weight_drop:g}" if weight_drop else ""
    text += f", cold starts {cold_starts:g}" if cold_starts else ""
    return text + (f", weights averaged (EMA {ema_decay:g})" if ema_decay else "")


_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(s|sec|m|min|h|hr|d)?\s*$", re.IGNORECASE)
_UNIT_SECONDS = {None: 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400}


def parse_duration(text):
    """'90s', '10m', '1.5h', '45' (seconds) -> seconds as float."""
    match = _DURATION.match(str(text))
    if not match:
        raise UsageError(f"--max-time: cannot read {text!r} as a duration (examples: 90s, 10m, 2h)")
    unit = match.group(2).lower() if match.group(2) else None
    seconds = float(match.group(1)) * _UNIT_SECONDS[unit]
    if seconds <= 0:
        raise UsageError("--max-time must be > 0")
    return seconds


def format_duration(seconds):
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m"
