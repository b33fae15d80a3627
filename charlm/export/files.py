"""Files of the export formats: which format a path asks for, the description each file carries in
its metadata, the optional packages that read and write them, and the checks of an output path
made before any work (the writes themselves are atomic: ``charlm.store.outputs``)."""
import importlib
import json
import os

from ..errors import CharlmError, UsageError
from ..store.outputs import check_writable, refuse_inputs
from ..text.vocab import EOS, EOS_ID, UNK, UNK_ID, is_label
from ..version import __version__

FORMATS = {"onnx": ".onnx", "torch": ".safetensors"}   # format -> its file extension
CHECKPOINT_EXT = ".npz"                                # charlm's own checkpoints: no export
WRITERS = {"onnx": "onnx", "torch": "safetensors.numpy"}   # format -> the package that writes it
EXTRAS = {"onnx": "onnx", "safetensors": "torch"}      # optional package -> charlm's extra


def format_for(path, to=None):
    """The format to write at path: ``to`` when given, else the one its extension names. A
    name whose extension is another format's is refused: that file would mislead its readers."""
    ext = os.path.splitext(str(path))[1].lower()
    if ext == CHECKPOINT_EXT:
        raise UsageError(f"{path} ends in {ext}, the extension of charlm's checkpoints: end it in "
                         ".onnx or .safetensors")
    named = next((fmt for fmt, known in FORMATS.items() if ext == known), None)
    if to is not None:
        if to not in FORMATS:
            raise UsageError(f"--to must be one of {', '.join(FORMATS)}, not {to!r}")
        if named not in (None, to):
            raise UsageError(f"--to {to} writes {FORMATS[to]}, but {path} ends in {ext}: end "
                             f"the name in {FORMATS[to]}, or leave --to out")
        return to
    if named is not None:
        return named
    raise UsageError(f"cannot tell the format from the name {path}: end it in .onnx or "
                     ".safetensors, or give --to onnx|torch")


def description(ckpt):
    """The JSON text stored as the metadata property ``charlm`` of an exported file: what a client
    needs to encode text, start and stop a sample, and rebuild the network."""
    c = ckpt.config
    tokens = ckpt.vocab.tokens
    return json.dumps({
        "vocab": tokens,                            # token strings, index = token id
        "mode": c.mode,                             # "stream" or "lines"
        "special_tokens": {EOS: EOS_ID, UNK: UNK_ID},
        "first_input": EOS_ID,                      # every text is read after <EOS>
        # <UNK> names no text, and a label token is an input only (docs/labels.md)
        "never_drawn": [UNK_ID] + [i for i, t in enumerate(tokens) if is_label(t)],
        "tokens": c.tokens,                         # "chars", or "words" (docs/words.md)
        "cell": c.cell, "hidden_size": c.hidden_size, "num_layers": c.num_layers,
        **({"labels": c.labels, "label_counts": c.label_counts} if c.labels else {}),
        "charlm_version": __version__,
    }, ensure_ascii=False)


def read_vocab(path):
    """The tokens in id order from a JSON file: a list, or an object with a ``vocab`` list (such
    as the ``charlm`` metadata of an exported file)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as e:
        raise UsageError(f"--vocab: cannot read {path}: {e.strerror or e}") from None
    except ValueError as e:
        raise UsageError(f"--vocab: {path} is not JSON ({e})") from None
    if isinstance(data, dict):
        data = data.get("vocab")
    if not isinstance(data, list) or not all(isinstance(t, str) for t in data):
        raise UsageError(f"--vocab: {path} holds no list of token strings (a JSON list, or an "
                         "object with a \"vocab\" list)")
    return data


def require(package, purpose):
    """Import an optional package, or fail in one line that names the extra that installs it."""
    try:
        return importlib.import_module(package)
    except ImportError:
        extra = EXTRAS[package.split(".")[0]]
        raise CharlmError(f"{purpose} needs the {package.split('.')[0]} package: "
                          f"pip install 'charlm[{extra}]'") from None


def claim_export(path, to, force, source):
    """The format to export to at path (:func:`format_for`), once the path is claimed
    (:func:`claim_output`, the checkpoint ``source`` being the input) and the package that writes
    the format is found (:func:`require`)."""
    claim_output(path, force, [(source, "the checkpoint")])
    fmt = format_for(path, to)
    require(WRITERS[fmt], f"charlm export --to {fmt}")
    return fmt


def check_import_names(path, out, mode):
    """Refuse, before any work, an import whose input is a charlm checkpoint, whose output is
    named as an export format, or whose mode is not one of charlm's."""
    if os.path.splitext(str(path))[1].lower() == CHECKPOINT_EXT:
        raise UsageError(f"{path} is named as a charlm checkpoint ({CHECKPOINT_EXT}): import reads "
                         "a PyTorch state dict in .safetensors, and a checkpoint needs none")
    ext = os.path.splitext(str(out))[1].lower() if out is not None else ""
    if ext in FORMATS.values():
        raise UsageError(f"-o {out} ends in {ext}, an export's extension: import writes a charlm "
                         f"checkpoint (name it {CHECKPOINT_EXT})")
    if mode is not None and mode not in ("stream", "lines"):
        raise UsageError(f"the mode must be stream or lines, not {mode!r}")


def claim_output(path, force, inputs=(), example="model.onnx"):
    """Refuse, before any work, an output path that cannot be written (a folder, a device or other
    special file, a missing or unwritable folder), that is one of the files read (``inputs``:
    (path or None, what it is) pairs), or that exists when ``force`` is false
    (``charlm.store.outputs``); ``example`` is the file name suggested for a folder."""
    check_writable(path, "-o", example)
    refuse_inputs(path, "-o", inputs)
    if os.path.exists(path) and not force:
        raise UsageError(f"-o: {path} exists; pass --force to replace it, or choose another -o")
