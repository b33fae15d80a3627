"""Checkpoint I/O: the only place that reads or writes ``.npz`` files (docs/checkpoint-format.md).

Besides the keys of the spec, a checkpoint written during training holds the latest training state
for ``--resume`` under ``state.*``:

- ``state.params``: the latest weights, one flat float32 array (in the order of
  ``network.shapes.shapes_for``);
- ``state.opt.<name>``: the optimizer's moments, flat arrays of the same size, and with
  ``--ema-decay`` ``state.opt.average``, the moving average of the weights;
- ``state.carry``: the recurrent state carried between batches, (L, S, B, H), stream mode;
- ``state.json``: the run state (``charlm.store.runstate.RunState``): step, data position, elapsed time,
  the validation history and more.

A bidirectional model (``charlm.network.bidirectional``) also holds its backward stack under
``backward.layers.{l}.*``, and its ``out.W`` is (2H, V).

Nothing is ever unpickled: arrays are read with ``allow_pickle=False``, so a file that carries
object arrays is refused before anything in it runs.
"""
import os
import zipfile
from dataclasses import dataclass, field

import numpy as np

from ..config import Config, optimizer_moments
from ..errors import CheckpointError, UsageError
from ..network.celltypes import cell as cell_named
from ..network.shapes import FlatArrays, shapes_for
from .runstate import RunState
from ..text import labels
from ..text.vocab import Vocab
from ..text.words import vocab_for

FORMAT, FORMAT_VERSION = "charlm", 1


@dataclass
class TrainingState:
    """What ``--resume`` needs to continue a run exactly where it stopped."""
    params: np.ndarray                               # latest weights, flat
    moments: dict = field(default_factory=dict)      # optimizer state: name -> flat array
    carry: np.ndarray | None = None                  # (L, S, B, H): the state between batches
    run: RunState = field(default_factory=RunState)


@dataclass
class Checkpoint:
    config: Config
    vocab: Vocab
    weights: FlatArrays                              # the best weights: what sample/score use
    training: TrainingState | None = None


def save(path, checkpoint):
    """Write checkpoint to path atomically (``outputs.write_atomically``): on any failure the
    previous file at path is left untouched.
    Whoever writes during a run holds ``outputs.OutputLock`` on path (``charlm train`` does)."""
    arrays = {
        "format": np.array(FORMAT),
        "format_version": np.array(FORMAT_VERSION, np.int64),
        "config": np.array(checkpoint.config.to_json()),
        "vocab": np.array(checkpoint.vocab.tokens),
        **checkpoint.vocab.arrays(),        # a word model's <UNK> spelling (charlm.text.words)
    }
    arrays.update((name, checkpoint.weights[name]) for name, _ in checkpoint.weights.shapes)
    state = checkpoint.training
    if state is not None:
        arrays["state.params"] = state.params
        arrays.update((f"state.opt.{name}", a) for name, a in state.moments.items())
        if state.carry is not None:
            arrays["state.carry"] = state.carry
        arrays["state.json"] = np.array(state.run.to_json())
    from .outputs import write_atomically
    write_atomically(path, lambda f: np.savez(f, **arrays), CheckpointError,
                     "the previous checkpoint (if any) is unchanged")


def require_file(path):
    """Raise CheckpointError unless path is a regular file (what :func:`load` reads first)."""
    if not os.path.exists(path):
        raise CheckpointError(f"no checkpoint at {path} (train one with `charlm train CORPUS --out {path}`)")
    if os.path.isdir(path):
        raise CheckpointError(f"{path} is a folder, not a checkpoint file")
    if not os.path.isfile(path):        # a pipe or a device: reading it could wait for ever
        raise CheckpointError(f"{path} is not a regular file, so not a checkpoint")


def load(path, with_training_state=False):
    """Read and check a checkpoint. Raises CheckpointError with a one-line reason for a file that
    is missing, not a checkpoint, truncated, corrupted, from a newer charlm, inconsistent or not
    finite."""
    require_file(path)
    try:
        is_zip = _is_zip(path)
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e.strerror or e}") from None
    if not is_zip:
        raise CheckpointError(f"{path} is not a charlm checkpoint (not an .npz file), or it is truncated")
    try:
        with np.load(path, allow_pickle=False) as npz:
            # a member that is not an .npy array comes back as bytes: no entry of a checkpoint
            arrays = {name: a for name in npz.files if isinstance(a := npz[name], np.ndarray)}
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise CheckpointError(f"{path} holds pickled objects; charlm never unpickles, refusing it") from None
        raise CheckpointError(f"{path} is not a readable checkpoint ({e})") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError, RuntimeError) as e:
        raise CheckpointError(f"{path} is not a readable checkpoint: truncated or corrupted ({e})") from None
    return _parse(path, arrays, with_training_state)


def _is_zip(path):
    """np.load treats anything that is neither .npy nor .npz as a pickle; only zips get that far."""
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


def _scalar(arrays, key, kind, path):
    a = arrays.get(key)
    if a is None or a.shape != () or a.dtype.kind not in kind:
        raise CheckpointError(f"{path} is not a charlm checkpoint (no valid '{key}' entry)")
    return a.item()


def _parse(path, arrays, with_training_state):
    if _scalar(arrays, "format", "U", path) != FORMAT:
        raise CheckpointError(f"{path} is not a charlm checkpoint")
    version = _scalar(arrays, "format_version", "iu", path)
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer charlm (format version {version}, this "
                              f"one reads {FORMAT_VERSION}); upgrade charlm to use it")
    if version < 1:
        raise CheckpointError(f"{path} has an invalid format version {version}")
    try:
        config = Config.from_json(_scalar(arrays, "config", "U", path)).validate()
        if (config.hidden_size is None or config.dropout is None
                or config.mode not in ("stream", "lines")):
            raise ValueError("config is not resolved")
    except (ValueError, TypeError, UsageError) as e:
        raise CheckpointError(f"{path} has an unreadable config ({e})") from None
    tokens = arrays.get("vocab")
    if tokens is None or tokens.ndim != 1 or tokens.dtype.kind != "U":
        raise CheckpointError(f"{path} has no valid vocabulary")
    try:
        vocab = vocab_for(config.tokens, tokens.tolist(), arrays)
    except ValueError as e:
        raise CheckpointError(f"{path} has an invalid vocabulary ({e})") from None
    if not labels.fit(config.labels, config.label_counts, vocab.tokens):
        raise CheckpointError(f"{path}: its labels and their counts do not fit its vocabulary's "
                              "label tokens")
    shapes = shapes_for(config, len(vocab))
    checked = [(name, _weight(arrays, name, shape, path)) for name, shape in shapes]
    weights = FlatArrays(shapes)        # allocated once the arrays are known to fit the config
    for name, array in checked:
        weights[name][...] = array
    training = _training_state(path, arrays, config, weights.flat.size) if with_training_state else None
    return Checkpoint(config, vocab, weights, training)


def _weight(arrays, name, shape, path):
    a = arrays.get(name)
    if a is None:
        raise CheckpointError(f"{path} is missing the weight '{name}'")
    if a.shape != shape:
        raise CheckpointError(f"{path}: '{name}' has shape {a.shape}, the config needs {shape}")
    if a.dtype.kind != "f":
        raise CheckpointError(f"{path}: '{name}' is not a float array")
    if not np.all(np.isfinite(a)):
        raise CheckpointError(f"{path}: '{name}' holds NaN or infinite values")
    return a


def _training_state(path, arrays, config, size):
    """The ``state.*`` entries, each checked against the config, or None when the checkpoint has
    none (e.g. written by export)."""
    if "state.json" not in arrays:
        return None
    try:
        run = RunState.from_json(_scalar(arrays, "state.json", "U", path))
    except ValueError as e:
        raise CheckpointError(f"{path} has an unreadable training state ({e})") from None
    params = _weight(arrays, "state.params", (size,), path)
    names = optimizer_moments(config)
    found = sorted(key[len("state.opt."):] for key in arrays if key.startswith("state.opt."))
    if found != sorted(names):
        raise CheckpointError(f"{path}: the optimizer state ({', '.join(found) or 'none'}) does not "
                              f"match its optimizer {config.optimizer} and --ema-decay "
                              f"{config.ema_decay or 0:g}")
    moments = {name: _weight(arrays, f"state.opt.{name}", (size,), path).astype(np.float32)
               for name in names}
    carry = arrays.get("state.carry")
    if carry is not None:
        carry = _weight(arrays, "state.carry", carry.shape, path)
        expected = (config.num_layers, cell_named(config.cell).num_states, config.batch_size,
                    config.hidden_size)
        columns = carry.shape[2] if carry.ndim == 4 else -1
        columns_ok = (columns == config.batch_size if config.mode == "stream"
                      else 1 <= columns <= config.batch_size)
        if carry.ndim != 4 or carry.shape[:2] != expected[:2] or carry.shape[3] != expected[3] \
                or not columns_ok:
            raise CheckpointError(f"{path}: 'state.carry' has shape {carry.shape}, the config needs "
                                  f"{expected}")
    return TrainingState(params.astype(np.float32), moments, carry, run)
