"""The ONNX graph of a charlm model, built with the ``onnx`` package's helpers (opset 17, IR 8, so
that runtimes from 2022 on read it, onnxruntime-web included). Standard operators only:

    tokens (B, T) int64 -> Transpose -> (T, B) -> Gather(E) -> x_0 (T, B, E_dim)
    layer l: RNN|GRU|LSTM(x_l, W_l, R_l, B_l, h[l], c[l]) -> Y (T, 1, B, H) -> Squeeze -> x_{l+1}
                                                          -> h_out[l], c_out[l] (1, B, H)
    x_L -> MatMul(W_y) -> Add(b_y) -> LogSoftmax -> Transpose -> log_probs (B, T, V)

Inputs: ``tokens`` (batch, time) int64 token ids, both dimensions dynamic; ``h`` (L, batch, H) and,
for an LSTM, ``c`` (L, batch, H) float32: the state before the first token (zeros to start a text).
Outputs: ``log_probs`` (batch, time, V) float32, log p(next token) after each input token;
``h_out`` (and ``c_out``): the state after the last token, to feed back as ``h`` (and ``c``).
The metadata property ``charlm`` holds the vocabulary, the mode and the special tokens as JSON
(:func:`charlm.export.files.description`).

Layer 0's input weights become an embedding table E and the operator's W (see
:func:`charlm.export.gates.input_projection`); the gate blocks are converted by
:data:`charlm.export.gates.ONNX`; each operator's bias is [charlm's b, zeros] (Wb, Rb).
"""
import numpy as np

from ..errors import UsageError
from ..version import __version__
from . import gates
from .files import description, require

OPSET, IR_VERSION = 17, 8
OPERATORS = {"rnn": "RNN", "gru": "GRU", "lstm": "LSTM"}
MAX_BYTES = 2_000_000_000      # a protobuf message holds at most 2 GiB


def onnx_bytes(ckpt, source=None):
    """The serialized ONNX model of ckpt, checked by ``onnx.checker``."""
    onnx = require("onnx", "charlm export --to onnx")
    if ckpt.weights.flat.nbytes > MAX_BYTES:
        raise UsageError(f"cannot export {source or 'this model'} to onnx: its "
                         f"{ckpt.weights.flat.nbytes / 1e9:.1f} GB of weights exceed the 2 GB an "
                         "ONNX file holds without external data")
    model = build(ckpt, source)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def build(ckpt, source=None):
    """The ``onnx.ModelProto`` of ckpt."""
    require("onnx", "charlm export --to onnx")
    from onnx import TensorProto, helper, numpy_helper
    layers, (w_y, b_y) = gates.plain_stack(ckpt, source, "onnx")
    c = ckpt.config
    H, L, V = c.hidden_size, c.num_layers, len(ckpt.vocab)
    layout = gates.ONNX[c.cell]
    lstm = c.cell == "lstm"
    initializers, nodes = [], []

    def constant(name, array):
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    nodes.append(helper.make_node("Transpose", ["tokens"], ["tokens_tb"], perm=[1, 0]))
    table, w0 = gates.input_projection(gates.to_layout(layers[0][0], layout, H))
    constant("embedding", table)
    nodes.append(helper.make_node("Gather", ["embedding", "tokens_tb"], ["x_0"], axis=0))
    constant("squeeze_axes", np.array([1], np.int64))
    constant("state_axis", np.array([0], np.int64))
    state_names = ["h", "c"] if lstm else ["h"]
    for l, (w_x, w_h, b) in enumerate(layers):
        w = w0 if l == 0 else gates.to_layout(w_x, layout, H).T           # (G*H, D)
        nodes += _recurrent_layer(helper, constant, l, w, w_h, b, c.cell, H, state_names)
    constant("out_W", w_y)
    constant("out_b", b_y)
    nodes += [
        helper.make_node("MatMul", [f"x_{L}", "out_W"], ["logits_nob"]),
        helper.make_node("Add", ["logits_nob", "out_b"], ["logits"]),
        helper.make_node("LogSoftmax", ["logits"], ["log_probs_tb"], axis=-1),
        helper.make_node("Transpose", ["log_probs_tb"], ["log_probs"], perm=[1, 0, 2]),
    ]
    for s in state_names:
        nodes.append(helper.make_node("Concat", [f"{s}_out_{l}" for l in range(L)], [f"{s}_out"],
                                      axis=0))

    def state_info(name):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, [L, "batch", H])

    graph = helper.make_graph(
        nodes, f"charlm_{c.cell}_{L}x{H}",
        [helper.make_tensor_value_info("tokens", TensorProto.INT64, ["batch", "time"])]
        + [state_info(s) for s in state_names],
        [helper.make_tensor_value_info("log_probs", TensorProto.FLOAT, ["batch", "time", V])]
        + [state_info(f"{s}_out") for s in state_names],
        initializers,
        doc_string=f"charlm {c.cell} {L}x{H}, {c.mode} mode, {V} tokens: log p(next token) after "
                   "each input token. Start a text from zero states with <EOS> (id 0) as its first "
                   "input; feed h_out (and c_out) back as h (and c) to go on.")
    model = helper.make_model(graph, producer_name="charlm", producer_version=__version__,
                              opset_imports=[helper.make_opsetid("", OPSET)],
                              ir_version=IR_VERSION)
    helper.set_model_props(model, {"charlm": description(ckpt)})
    return model


def _recurrent_layer(helper, constant, l, w, w_h, b, cell, H, states):
    """The nodes of layer l: its slices of the stacked states, its recurrent operator on x_l (its
    input weights ``w`` (G*H, D) already in ONNX's layout), and its output squeezed to x_{l+1}."""
    layout = gates.ONNX[cell]
    constant(f"W_{l}", w[None])
    constant(f"R_{l}", gates.to_layout(w_h, layout, H).T[None])       # (1, G*H, H)
    bias = gates.to_layout(b, layout, H)
    constant(f"B_{l}", np.concatenate([bias, np.zeros_like(bias)])[None])   # (1, 2*G*H)
    constant(f"start_{l}", np.array([l], np.int64))
    constant(f"end_{l}", np.array([l + 1], np.int64))
    nodes = [helper.make_node("Slice", [s, f"start_{l}", f"end_{l}", "state_axis"], [f"{s}_{l}"])
             for s in states]         # this layer's slice (1, B, H) of the stacked state
    attributes = {"hidden_size": H}
    if cell == "gru":
        attributes["linear_before_reset"] = 0      # the reset gate before the product
    nodes.append(helper.make_node(
        OPERATORS[cell],
        [f"x_{l}", f"W_{l}", f"R_{l}", f"B_{l}", ""] + [f"{s}_{l}" for s in states],
        [f"y_{l}"] + [f"{s}_out_{l}" for s in states], **attributes))
    nodes.append(helper.make_node("Squeeze", [f"y_{l}", "squeeze_axes"], [f"x_{l + 1}"]))
    return nodes
