"""The settings of scoring's two other figures (dynamic evaluation, and nanoGPT's windows), and
their checks: importable without numpy's kernels, so that the command line can show their
defaults in ``--help`` without loading Numba."""
import math
import numbers
from dataclasses import asdict, dataclass

from ..errors import UsageError

DEFAULT_WINDOWS = 12_800   # windows=N: nanoGPT's count (its 200 batches of 64)


def _named(setting):
    """A setting as the command line and the API both name it."""
    option = {"lr": "--dynamic-lr", "segment": "--dynamic-segment", "decay": "--dynamic-decay"}
    return f"{setting} ({option[setting]})" if setting in option else setting


def _whole(value, least):
    """value is a whole number (Python's or numpy's) of at least ``least``."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= least


@dataclass(frozen=True)
class Settings:
    """Dynamic evaluation's settings; the defaults were chosen on training text
    (docs/dynamic-evaluation.md says how)."""
    lr: float = 4e-4          # step size of the RMS-scaled gradient step
    segment: int = 50         # tokens scored, then learnt from, at a time
    decay: float = 1e-3       # pull toward the trained weights after each step
    rms_decay: float = 0.999  # beta: the running mean square's memory
    eps: float = 1e-8         # added to the RMS

    def __post_init__(self):
        for name in ("lr", "decay", "rms_decay", "eps"):
            value = getattr(self, name)
            if not (isinstance(value, numbers.Real) and not isinstance(value, bool) and value >= 0
                    and math.isfinite(value)):
                raise UsageError(f"dynamic evaluation's {_named(name)} must be a number >= 0, "
                                 f"not {value}")
        if self.decay > 1:
            raise UsageError(f"dynamic evaluation's {_named('decay')} must be in [0, 1], not "
                             f"{self.decay}")
        if self.rms_decay >= 1:
            raise UsageError(f"dynamic evaluation's rms_decay must be below 1, not "
                             f"{self.rms_decay}")
        if not _whole(self.segment, 1):
            raise UsageError(f"dynamic evaluation's {_named('segment')} must be a whole number "
                             f">= 1, not {self.segment}")

    def to_json(self):
        return asdict(self)


def settings_from(dynamic):
    """The Settings that the API's ``dynamic=`` means: True (the defaults), a dict of settings to
    change, or a Settings; None or False for static scoring."""
    if dynamic is None or dynamic is False:
        return None
    if dynamic is True:
        return Settings()
    if isinstance(dynamic, Settings):
        return dynamic
    if isinstance(dynamic, dict):
        unknown = set(dynamic) - set(Settings.__dataclass_fields__)
        if unknown:
            raise UsageError(f"unknown dynamic evaluation setting(s): {', '.join(sorted(unknown))} "
                             f"(known: {', '.join(Settings.__dataclass_fields__)})")
        return Settings(**dynamic)
    raise UsageError(f"dynamic= takes True, a dict of settings or a Settings, not "
                     f"{type(dynamic).__name__}")


def check_windows(model, windows, num_windows, seed):
    """Refuse window settings that mean nothing, before any work."""
    for name, value in (("windows (--windows)", windows),
                        ("the number of windows (--num-windows)", num_windows)):
        if not _whole(value, 1):
            raise UsageError(f"{name} must be a whole number >= 1, not {value!r}")
    if not _whole(seed, 0):
        raise UsageError(f"the windows' seed (--seed) must be a whole number >= 0, not {seed!r}")
    if model.config.mode == "lines":
        raise UsageError("windows apply to a stream-mode model's text; this model is in lines "
                         "mode, where every line is already read from the zero state")
    if model.vocab.kind == "words":
        raise UsageError("windows are nanoGPT's protocol, a mean loss over character targets; a "
                         "word model's targets are word tokens, so its windows would not compare "
                         "with a character model's (score the file without --windows: bits per "
                         "character compare)")
