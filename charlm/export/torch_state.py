"""A charlm model as a PyTorch state dict in ``.safetensors`` (no pickle), and back.

The state dict is that of this module (docs/export.md builds it in a dozen lines):

    embed = nn.Embedding(V, E)                       embed.weight          (V, E)
    rnn = nn.RNN | nn.LSTM(E, H, L, batch_first=True)  rnn.weight_ih_l{l}    (G*H, E or H)
                                                     rnn.weight_hh_l{l}    (G*H, H)
                                                     rnn.bias_ih_l{l}, rnn.bias_hh_l{l}  (G*H,)
    out = nn.Linear(H, V)                            out.weight (V, H), out.bias (V,)

and ``log_softmax(out(rnn(embed(tokens))))`` is charlm's log p(next token). Export writes
charlm's bias as ``bias_ih`` and zeros as ``bias_hh`` (PyTorch adds both), the transposed weights
with the gate blocks in PyTorch's order (:data:`charlm.export.gates.TORCH`), and layer 0's
input weights as an embedding and ``weight_ih_l0`` (:func:`charlm.export.gates.input_projection`:
E = V, a one-hot embedding, when V <= G*H). The file's metadata holds ``format: pt`` and
``charlm``: the vocabulary, the mode and a labelled model's labels as JSON.

Import reads any such state dict (an embedding of any width E, or none: then layer 0 reads the
one-hot vector and ``weight_ih_l0`` is (G*H, V)) and folds it into charlm's layout: W_x of layer 0
= E W_ih^T, b = b_ih + b_hh. On a file that export wrote, the folds are exact: export then import
gives the same weights bit for bit, and so does import then export.

A GRU is refused both ways: nn.GRU applies its reset gate after the recurrent product
(see :mod:`charlm.export.gates`), so no state dict of it computes charlm's GRU.
"""
import json
import os
import re

import numpy as np

from ..config import Config, default_seq_len
from ..errors import CheckpointError, UsageError
from ..network.stack import FlatArrays, parameter_shapes
from ..store.checkpoint import Checkpoint
from ..text import labels
from ..text.vocab import Vocab
from . import gates
from .files import description, require

GRU_REASON = ("PyTorch's nn.GRU applies its reset gate after the recurrent product "
              "(r * (W_hn h + b_hn)), charlm's GRU before it (W_h (r * h)), so no nn.GRU "
              "computes charlm's GRU")
CELLS_BY_GATES = {1: "rnn", 4: "lstm"}
NUMPY_FLOATS = ("F16", "F32", "F64")     # safetensors' names of the floats numpy has


# ---- export -------------------------------------------------------------------------------------

def state_dict(ckpt, source=None):
    """{name: float32 array} of the module above for ckpt."""
    layers, (w_y, b_y) = gates.plain_stack(ckpt, source, "torch")
    c = ckpt.config
    if c.cell not in gates.TORCH:
        raise UsageError(f"cannot export {source or 'this model'} to torch: it is a GRU, and "
                         f"{GRU_REASON}; use --to onnx, whose GRU operator has both forms")
    H, layout = c.hidden_size, gates.TORCH[c.cell]
    table, w0 = gates.input_projection(gates.to_layout(layers[0][0], layout, H))
    state = {"embed.weight": table}
    for l, (w_x, w_h, b) in enumerate(layers):
        bias = gates.to_layout(b, layout, H)
        state[f"rnn.weight_ih_l{l}"] = w0 if l == 0 else gates.to_layout(w_x, layout, H).T
        state[f"rnn.weight_hh_l{l}"] = gates.to_layout(w_h, layout, H).T
        state[f"rnn.bias_ih_l{l}"] = bias
        state[f"rnn.bias_hh_l{l}"] = np.zeros_like(bias)
    state["out.weight"] = w_y.T
    state["out.bias"] = b_y
    return {k: np.ascontiguousarray(v, np.float32) for k, v in state.items()}


def safetensors_bytes(ckpt, source=None):
    """The ``.safetensors`` file of :func:`state_dict`, the vocabulary in its metadata."""
    st = require("safetensors.numpy", "charlm export --to torch")
    state = state_dict(ckpt, source)
    return st.save(state, metadata={"format": "pt", "charlm": description(ckpt)})


# ---- import -------------------------------------------------------------------------------------

def read_state(path):
    """({name: array}, metadata dict) of a ``.safetensors`` file."""
    st = require("safetensors.numpy", "charlm import")
    safetensors = require("safetensors", "charlm import")
    if not os.path.exists(path):
        raise CheckpointError(f"no file at {path}")
    if os.path.isdir(path):
        raise CheckpointError(f"{path} is a folder, not a .safetensors file")
    if str(path).lower().endswith(".onnx"):
        raise CheckpointError(f"{path} is an ONNX file; charlm imports PyTorch state dicts in "
                              ".safetensors (export the model from PyTorch with safetensors)")
    try:
        with safetensors.safe_open(path, framework="numpy") as f:
            metadata = f.metadata() or {}
            dtypes = {name: f.get_slice(name).get_dtype() for name in f.keys()}
        _refuse_floats_numpy_lacks(dtypes, path)
        arrays = st.load_file(path)
    except (safetensors.SafetensorError, OSError, ValueError, TypeError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{path} is not a readable .safetensors file ({reason})") from None
    return arrays, metadata


def _refuse_floats_numpy_lacks(dtypes, path):
    """CheckpointError for tensors of a float type numpy has no dtype for (bfloat16, float8),
    given {name: safetensors dtype}: numpy could not even load them to say so."""
    for name, dtype in sorted(dtypes.items()):
        if dtype.startswith(("F", "BF")) and dtype not in NUMPY_FLOATS:
            kind = "bfloat16" if dtype == "BF16" else dtype
            raise CheckpointError(f"{path} holds {kind} tensors ('{name}'), which charlm cannot "
                                  "read: convert the state dict to float32 first (in PyTorch, "
                                  "v.float() for each tensor v)")


def checkpoint_from_state(arrays, metadata, path, vocab=None, mode=None):
    """A charlm Checkpoint (weights only) of a state dict of the module above. vocab (tokens in
    id order) and mode, when given, override the file's metadata; a bad one is a UsageError, a
    bad file a CheckpointError."""
    meta = _charlm_metadata(metadata, path)
    if meta.get("tokens", "chars") != "chars":
        raise CheckpointError(f"{path} holds a model of {meta['tokens']}, not characters; charlm "
                              "import reads character models (load the .npz it was exported from)")
    cell, L, state = _checked_state(arrays, path)
    V, H = state["out.weight"].shape
    config, voc = _config_and_vocab(meta, path, cell, V, H, L, vocab, mode)
    return Checkpoint(config, voc, _folded_weights(state, cell, V, H, L))


def _checked_state(arrays, path):
    """(cell name, layers, {key: float32 array}) of a state dict, every key and shape checked
    against an nn.Embedding (optional) + nn.RNN/nn.LSTM + nn.Linear(H, V) module."""
    keys = set(arrays)
    for key in sorted(keys):
        if key.endswith("_reverse") or "_reverse." in key:
            raise CheckpointError(f"{path} holds a bidirectional recurrent layer ({key}); charlm "
                                  "imports left-to-right nn.RNN and nn.LSTM")
        if re.match(r"^rnn\.weight_hr_l\d+$", key):
            raise CheckpointError(f"{path} holds an LSTM with proj_size ({key}); charlm imports "
                                  "LSTMs without projections")
    w_hh = _array(arrays, "rnn.weight_hh_l0", path, ndim=2)
    H = w_hh.shape[1]
    if H == 0 or w_hh.shape[0] % H:
        raise CheckpointError(f"{path}: 'rnn.weight_hh_l0' has shape {w_hh.shape}; an "
                              "nn.RNN or nn.LSTM has (G*H, H)")
    G = w_hh.shape[0] // H
    if G == 3:
        raise CheckpointError(f"{path} holds an nn.GRU (3 gate blocks): {GRU_REASON}")
    if G not in CELLS_BY_GATES:
        raise CheckpointError(f"{path}: 'rnn.weight_hh_l0' has {G} gate blocks of {H}; nn.RNN "
                              "has 1, nn.LSTM 4")
    L = 0
    while f"rnn.weight_hh_l{L}" in keys or f"rnn.weight_ih_l{L}" in keys:
        L += 1
    V = _array(arrays, "out.weight", path, ndim=2).shape[0]
    embedded = "embed.weight" in keys
    E = _array(arrays, "embed.weight", path, shape=(V, None)).shape[1] if embedded else V
    expected = {"out.weight": (V, H), "out.bias": (V,)}
    if embedded:
        expected["embed.weight"] = (V, E)
    for l in range(L):
        expected.update({f"rnn.weight_ih_l{l}": (G * H, E if l == 0 else H),
                         f"rnn.weight_hh_l{l}": (G * H, H),
                         f"rnn.bias_ih_l{l}": (G * H,), f"rnn.bias_hh_l{l}": (G * H,)})
    unexpected = sorted(keys - set(expected))
    if unexpected:
        raise CheckpointError(f"{path} holds keys that no nn.Embedding + nn.RNN/nn.LSTM + "
                              f"nn.Linear(H, V) state dict has: {', '.join(unexpected[:4])} "
                              "(see docs/export.md for the names)")
    state = {name: _array(arrays, name, path, shape=shape) for name, shape in expected.items()}
    return CELLS_BY_GATES[G], L, state


def _config_and_vocab(meta, path, cell, V, H, L, vocab, mode):
    """(Config, Vocab) of the imported model: the vocabulary and mode from the arguments, else
    from the metadata; the training settings are charlm's defaults (the file records none)."""
    tokens = vocab if vocab is not None else meta.get("vocab")
    if tokens is None:
        raise UsageError(f"{path} holds no vocabulary in its metadata: give one with --vocab FILE "
                         "(a JSON list of the tokens in id order, \"<EOS>\" and \"<UNK>\" first)")
    bad = UsageError if vocab is not None else CheckpointError
    where = "the --vocab" if vocab is not None else f"the metadata of {path}"
    try:
        voc = Vocab(tokens)
    except (ValueError, TypeError) as e:
        raise bad(f"{where} is not a charlm vocabulary ({e})") from None
    if len(voc) != V:
        raise bad(f"{where} has {len(voc)} tokens, the weights of {path} have {V} "
                  f"(out.weight is {(V, H)})")
    mode = mode or meta.get("mode") or "stream"
    if mode not in ("stream", "lines"):
        raise bad(f"{where} gives the mode {mode!r}; charlm's are stream and lines")
    config = Config(cell=cell, hidden_size=H, num_layers=L, mode=mode, dropout=0.0,
                    weight_drop=0.0, cold_starts=0.0, ema_decay=0.0, seq_len=default_seq_len(mode),
                    **_labels(meta, voc, path))
    try:
        config.validate()
    except UsageError:
        raise CheckpointError(f"{path} holds {L} layers of {H} units; charlm holds 1 to 16 layers "
                              "of 1 to 8192") from None
    return config, voc


def _labels(meta, voc, path):
    """The labels and their training counts that export recorded for a labelled model ({} for
    none), checked against the vocabulary's label tokens: with them the model generates and
    classifies by label as the checkpoint it came from did."""
    names, counts = meta.get("labels"), meta.get("label_counts")
    if names is None:
        return {}
    if not (isinstance(names, list) and labels.fit(names, counts, voc.tokens)):
        raise CheckpointError(f"{path}: the labels in its metadata do not fit its vocabulary's "
                              "label tokens")
    return {"labels": names, "label_counts": counts}


def _folded_weights(state, cell, V, H, L):
    """charlm's weights of a checked state dict: the embedding folded into layer 0's input
    weights, the two biases added, the gate blocks in charlm's order."""
    layout = gates.TORCH[cell]
    weights = FlatArrays(parameter_shapes(cell, V, H, L))
    table = state.get("embed.weight")
    table = np.eye(V, dtype=np.float32) if table is None else table
    for l in range(L):
        w_ih = state[f"rnn.weight_ih_l{l}"]
        w_x = gates.fold(table, w_ih) if l == 0 else w_ih.T
        weights[f"layers.{l}.W_x"][...] = gates.from_layout(w_x, layout, H)
        w_hh = state[f"rnn.weight_hh_l{l}"]
        weights[f"layers.{l}.W_h"][...] = gates.from_layout(w_hh.T, layout, H)
        b_ih, b_hh = state[f"rnn.bias_ih_l{l}"], state[f"rnn.bias_hh_l{l}"]
        bias = b_ih + b_hh if b_hh.any() else b_ih       # adding zeros could flip a -0.0
        weights[f"layers.{l}.b"][...] = gates.from_layout(bias, layout, H)
    weights["out.W"][...] = state["out.weight"].T
    weights["out.b"][...] = state["out.bias"]
    return weights


def _charlm_metadata(metadata, path):
    text = metadata.get("charlm")
    if text is None:
        return {}
    try:
        meta = json.loads(text)
    except ValueError:
        meta = None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: the metadata entry 'charlm' is not a JSON object")
    return meta


def _array(arrays, name, path, ndim=None, shape=None):
    """arrays[name] as float32, checked: present, floating, finite, of the shape (None: any)."""
    a = arrays.get(name)
    if a is None:
        raise CheckpointError(f"{path} is missing the key '{name}' (see docs/export.md for the "
                              "names of a state dict charlm imports)")
    if shape is not None:
        ndim = len(shape)
    if a.ndim != ndim or (shape is not None and any(s is not None and s != n
                                                    for s, n in zip(shape, a.shape))):
        want = (f"({', '.join('?' if s is None else str(s) for s in shape)})" if shape
                else f"{ndim} dimensions")
        raise CheckpointError(f"{path}: '{name}' has shape {tuple(a.shape)}, the other weights "
                              f"need {want}")
    if a.dtype.kind != "f":
        raise CheckpointError(f"{path}: '{name}' is not a float tensor ({a.dtype})")
    a = a.astype(np.float32)
    if not np.all(np.isfinite(a)):
        raise CheckpointError(f"{path}: '{name}' holds NaN or infinite values (or values too "
                              "large for float32)")
    return a
