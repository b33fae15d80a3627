"""Export and import: a charlm model as a file that other runtimes read, and back
(docs/export.md).

- ``gates``: the gate layouts of charlm, ONNX and PyTorch, and the conversions between them; the
  input projection of layer 0 as an embedding table and an operator's input weights.
- ``onnx_graph``: the ONNX graph (standard ``RNN``/``GRU``/``LSTM`` operators), built with the
  ``onnx`` package's helpers.
- ``torch_state``: the state dict of stock ``nn.Embedding`` + ``nn.RNN``/``nn.LSTM`` + ``nn.Linear``
  as a ``.safetensors`` file, and the reverse (a state dict to a charlm checkpoint).
- ``files``: the format a path asks for, the description in a file's metadata, the optional
  packages, and the checks of an output path (:func:`files.claim_export`).

What these modules may import: numpy, charlm's store (the one checkpoint reader and writer), its
config, vocabulary and cell table, and its errors; the optional packages ``onnx`` and
``safetensors`` only inside the functions that need them (through :func:`files.require`), so that
``import charlm`` and every other command work without them. Nothing here runs a network:
agreement with charlm's own forward pass is held by ``tests/test_export.py`` with the real runtimes.
"""
from .files import FORMATS, format_for


def export(ckpt, path, to=None, source=None, force=False):
    """Write the checkpoint ``ckpt`` (a :class:`charlm.store.checkpoint.Checkpoint`) to ``path``
    as ``to`` (``"onnx"`` or ``"torch"``; from the extension when None), atomically; an existing
    file only with ``force``. Returns the format written. ``source``, the checkpoint's path,
    names the model in error messages and may not be ``path``."""
    from ..store.outputs import write_atomically
    from .files import claim_export
    fmt = claim_export(path, to, force, source)
    if fmt == "onnx":
        from .onnx_graph import onnx_bytes
        data = onnx_bytes(ckpt, source)
    else:
        from .torch_state import safetensors_bytes
        data = safetensors_bytes(ckpt, source)
    write_atomically(path, lambda f: f.write(data))
    return fmt


def import_checkpoint(path, vocab=None, mode=None, out=None, force=False):
    """A :class:`charlm.store.checkpoint.Checkpoint` (weights only) from a PyTorch state dict in
    the ``.safetensors`` file at ``path``; ``vocab`` (a list of tokens in id order, or the path of
    a JSON file holding one) and ``mode`` override what the file's metadata says. With ``out``,
    also written there as a charlm checkpoint (an existing file only with ``force``)."""
    import contextlib
    import os

    from ..store import checkpoint
    from ..store.outputs import OutputLock
    from .files import check_import_names, claim_output, read_vocab
    from .torch_state import checkpoint_from_state, read_state
    vocab_file = vocab if isinstance(vocab, (str, os.PathLike)) else None
    check_import_names(path, out, mode)
    if out is not None:
        claim_output(out, force, [(path, "the file"), (vocab_file, "the --vocab file")],
                     example="model.npz")
    if vocab_file is not None:
        vocab = read_vocab(vocab_file)
    # one writer per checkpoint: none while a run trains into it
    with OutputLock(os.fspath(out), "-o") if out is not None else contextlib.nullcontext():
        arrays, metadata = read_state(path)
        ckpt = checkpoint_from_state(arrays, metadata, path, vocab=vocab, mode=mode)
        if out is not None:
            checkpoint.save(out, ckpt)
    return ckpt


__all__ = ["FORMATS", "export", "format_for", "import_checkpoint"]
