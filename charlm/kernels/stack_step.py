"""One step of the stack of recurrent layers for generation, written once: sampling
(``kernels.draw``) and beam search (``kernels.beam_steps``) both advance their rows with
:func:`stack_step` and read the output layer with :func:`output_logits` (Numba).

Per step, for R rows side by side (row-vector convention, gate blocks as in docs/model.md):

    layer 0:   z = W_x[token] + b + h_{t-1} W_h            (a row gather: the input is one-hot)
    layer l:   z = h^{l-1}_t W_x + b + h^l_{t-1} W_h
    cell       the element-wise update of ``kernels.cells`` (the GRU's candidate block reads
               (r * h_{t-1}) W_h[:, 2H:] instead)
    output     logits = h^top W_y + b_y

Row i continues row rows[i] of the step before (beam search: a gather, so states are never copied
to reorder them), or row i itself when ``rows`` is None (sampling; Numba drops the gather from
that compilation).

The weights come in one of two layouts, each a record of arrays (Numba compiles each caller once
per layout, and :func:`layer_products` and :func:`output_logits` pick the products at compile
time):

- :class:`RowWeights`, for one row: a single sample is bound by reading the weights once per step
  (about 3 MB for a 2x256 LSTM), so its products are row-blocked multiply-adds that stream each
  weight row once (:func:`add_row_product`).
- :class:`TransposedWeights`, for several rows (several samples, the beam): one product per layer,
  [x | h_{t-1}] [W_x; W_h], through ``linalg.matmul_nt`` on tables whose rows run along the input;
  on these few rows it is faster than ``np.dot``, which repacks the weights on every call
  (``benchmarks/bench_products.py`` measures both).

Both are packed per worker (``charlm.generation.launch``): worker k owns hidden units
[k n, (k + 1) n), n = H / workers, and its tables hold the columns of those units gate block by
gate block, width = G' n columns:

    emb    (workers, V, width)          layer 0's W_x rows
    b      (workers, L, width)
    RowLayers:        w_x (workers, L-1, H, width), w_h (workers, L, H, width)
    TransposedLayers: wt0 (workers, width, H) layer 0's W_h^T,
                      wt_up (workers, L-1, width, 2H) [W_x; W_h]^T of the layers above
    output RowWeights.w_y (parts, H, width_y): its columns in parts of width_y = ceil(V / parts),
           the last padded with zeros, b_y (parts * width_y,) likewise; float32, or for a
           large output layer half precision (uint16 bits, :func:`widen`);
           TransposedWeights.wt_y (V, H), b_y (V,)

G' = G, except for the GRU: ``gates`` holds its [r, u] blocks (G' = 2) and ``candidate`` its
candidate block (G' = 1), which multiplies r * h_{t-1} instead of h_{t-1}. For rnn and lstm the
candidate tables have no columns.

Two workers split a step's hidden units (threads on two cores, each reading half of every gate
block's columns) and meet at a barrier after each layer. A small output layer (a character
model's) each computes itself, on identical numbers, so both reach the same tokens without
another barrier. A large one (RowWeights with parts = 2: a word model's, whose output product is
most of a step) they split too, worker k writing part k of shared logits, and meet once more.
A large output layer's weights are read in half precision (with one worker too): then a 2x512
word model's weights fit in the cache, and a step no longer waits on memory for every weight
(``docs/words.md``, Speed). Only the logits are approximate (each weight rounded to 11
significant bits); the states are exact.

State (B rows, L layers, H units): h and c (2, L, B, H) float32, double-buffered: tick t reads
buffer t % 2 and writes the other, so a worker never overwrites what the other is still reading
(and the LSTM's c update never works in place); rh (L, B, H) scratch for the GRU's r * h.
"""
from typing import NamedTuple

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

from . import cells
from .barrier import barrier
from .codes import CELL_CODES
from .linalg import matmul_nt

KERNEL = dict(cache=True, error_model="numpy", nogil=True)

RNN, GRU, LSTM = CELL_CODES["rnn"], CELL_CODES["gru"], CELL_CODES["lstm"]


# ---- the weights' two layouts ------------------------------------------------------------------

class RowLayers(NamedTuple):
    """The layers' tables of some gate blocks, for one row (shapes in the module docstring)."""
    emb: np.ndarray
    b: np.ndarray
    w_x: np.ndarray
    w_h: np.ndarray


class TransposedLayers(NamedTuple):
    """The layers' tables of some gate blocks, for several rows (shapes in the module docstring)."""
    emb: np.ndarray
    b: np.ndarray
    wt0: np.ndarray
    wt_up: np.ndarray


class RowWeights(NamedTuple):
    """A network's weights for one row: every gate block (the GRU's [r, u]), the GRU's candidate
    block, the output layer."""
    gates: RowLayers
    candidate: RowLayers
    w_y: np.ndarray
    b_y: np.ndarray


class TransposedWeights(NamedTuple):
    """A network's weights for several rows, as :class:`RowWeights` with transposed tables."""
    gates: TransposedLayers
    candidate: TransposedLayers
    wt_y: np.ndarray
    b_y: np.ndarray


# ---- products --------------------------------------------------------------------------------

@intrinsic
def _half_to_float(typingctx, bits):
    # IEEE half precision, kept as its 16 bits (Numba has no float16 on the CPU), widened exactly
    # to float32 (one vcvtph2ps for a vector of them).
    if bits != types.uint16:
        return None

    def codegen(context, builder, sig, args):
        return builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.FloatType())
    return types.float32(types.uint16), codegen


def widen(value):
    """A weight as a float: itself (float32, float64), or a half-precision weight's 16 bits
    (uint16) widened to float32."""
    raise NotImplementedError("called from Numba kernels only")


@overload(widen, jit_options=dict(error_model="numpy"))
def _widen(value):
    if value in (types.float32, types.float64):
        return lambda value: value
    if value == types.uint16:
        return lambda value: _half_to_float(value)
    return None


@njit(**KERNEL)
def add_row_product(x, w, z):
    """z += x @ w for one row x (K,), w (K, N) float32 or half precision (:func:`widen`),
    z (N,): a sum of K scaled rows of w, taken four at a time so that z is loaded and stored once
    per four rows of w read (the loop over N vectorises)."""
    K = x.shape[0]
    N = w.shape[1]
    k4 = K - K % 4
    for i in range(0, k4, 4):
        a0, a1, a2, a3 = x[i], x[i + 1], x[i + 2], x[i + 3]
        w0, w1, w2, w3 = w[i], w[i + 1], w[i + 2], w[i + 3]
        for j in range(N):
            z[j] += ((a0 * widen(w0[j]) + a1 * widen(w1[j]))
                     + (a2 * widen(w2[j]) + a3 * widen(w3[j])))
    for i in range(k4, K):
        a, w_i = x[i], w[i]
        for j in range(N):
            z[j] += a * widen(w_i[j])


@njit(**KERNEL)
def set_rows(z, bias):
    """z[b] = bias for every row."""
    for b in range(z.shape[0]):
        z_b = z[b]
        for j in range(z.shape[1]):
            z_b[j] = bias[j]


@njit(**KERNEL)
def gather_rows(z, table, tokens, bias):
    """z[b] = table[tokens[b]] + bias: the input product of a one-hot input."""
    for b in range(z.shape[0]):
        z_b, row = z[b], table[tokens[b]]
        for j in range(z.shape[1]):
            z_b[j] = row[j] + bias[j]


@njit(**KERNEL)
def add_bias(z, bias):
    """z[i] += bias for every row."""
    for i in range(z.shape[0]):
        z_i = z[i]
        for j in range(z.shape[1]):
            z_i[j] += bias[j]


@njit(**KERNEL)
def layer_inputs(xin, below, h_prev):
    """xin (R, 2H) = [below | h_prev], row by row: the input of a layer above the first."""
    H = below.shape[1]
    for i in range(xin.shape[0]):
        xin[i, :H] = below[i]
        xin[i, H:] = h_prev[i]


@njit(**KERNEL)
def row_layer_products(layers, l, worker, h_prev, below, tok, xin, z):
    """:func:`layer_products` for one row, from :class:`RowLayers` (xin unused)."""
    if l == 0:
        gather_rows(z, layers.emb[worker], tok, layers.b[worker, 0])
    else:
        set_rows(z, layers.b[worker, l])
        add_row_product(below[0], layers.w_x[worker, l - 1], z[0])
    add_row_product(h_prev[0], layers.w_h[worker, l], z[0])


@njit(**KERNEL)
def transposed_layer_products(layers, l, worker, h_prev, below, tok, xin, z):
    """:func:`layer_products` for several rows, from :class:`TransposedLayers`: a row gather of
    emb and h_prev wt0^T for layer 0, [below | h_prev] wt_up^T above it."""
    if l == 0:
        matmul_nt(h_prev, layers.wt0[worker], z)
        for i in range(z.shape[0]):
            cells.add_to(z[i], layers.emb[worker, tok[i]], layers.b[worker, 0])
    else:
        layer_inputs(xin, below, h_prev)
        matmul_nt(xin, layers.wt_up[worker, l - 1], z)
        add_bias(z, layers.b[worker, l])


def layer_products(layers, l, worker, h_prev, below, tok, xin, z):
    """z (R, width) = this worker's columns of x W_x + h_{t-1} W_h + b for layer l, from either
    layout (chosen when Numba compiles the caller): below (R, H) is the layer below's new h,
    h_prev (R, H) this layer's h_{t-1}, tok (R,) the inputs of layer 0, xin (R, 2H) scratch."""
    raise NotImplementedError("called from Numba kernels only")


@overload(layer_products, jit_options=dict(error_model="numpy"))
def _layer_products(layers, l, worker, h_prev, below, tok, xin, z):
    kind = getattr(layers, "instance_class", None)
    if kind is RowLayers:
        return lambda layers, l, worker, h_prev, below, tok, xin, z: row_layer_products(
            layers, l, worker, h_prev, below, tok, xin, z)
    if kind is TransposedLayers:
        return lambda layers, l, worker, h_prev, below, tok, xin, z: transposed_layer_products(
            layers, l, worker, h_prev, below, tok, xin, z)
    return None


@njit(**KERNEL)
def row_output(weights, h_top, logits, worker):
    """:func:`output_logits` for one row: the whole output layer (one part), or this worker's
    part when the workers split it."""
    k = worker if weights.w_y.shape[0] > 1 else 0
    width = weights.w_y.shape[2]
    z = logits[0, k * width:(k + 1) * width]
    z[:] = weights.b_y[k * width:(k + 1) * width]
    add_row_product(h_top[0], weights.w_y[k], z)


@njit(**KERNEL)
def transposed_output(weights, h_top, logits, worker):
    """:func:`output_logits` for several rows (each worker computes the whole)."""
    matmul_nt(h_top, weights.wt_y, logits)
    add_bias(logits, weights.b_y)


def output_logits(weights, h_top, logits, worker):
    """logits (R, V) = h_top W_y + b_y for the top layer's new h_top (R, H), from either layout:
    only this worker's part of the columns when :func:`output_parts` is above 1."""
    raise NotImplementedError("called from Numba kernels only")


def output_parts(weights):
    """How many parts the workers split the output layer into: 1 (each computes it whole), or
    one per worker."""
    raise NotImplementedError("called from Numba kernels only")


@overload(output_logits, jit_options=dict(error_model="numpy"))
def _output_logits(weights, h_top, logits, worker):
    kind = getattr(weights, "instance_class", None)
    if kind is RowWeights:
        return lambda weights, h_top, logits, worker: row_output(weights, h_top, logits, worker)
    if kind is TransposedWeights:
        return lambda weights, h_top, logits, worker: transposed_output(weights, h_top, logits,
                                                                        worker)
    return None


@overload(output_parts, jit_options=dict(error_model="numpy"))
def _output_parts(weights):
    kind = getattr(weights, "instance_class", None)
    if kind is RowWeights:
        return lambda weights: weights.w_y.shape[0]
    if kind is TransposedWeights:
        return lambda weights: 1
    return None


# ---- the step ---------------------------------------------------------------------------------

@njit(**KERNEL)
def step_buffers(weights, B, H, workers):
    """The scratch of :func:`stack_step` for B rows, made once per kernel call: z (B, width) and
    z_c (B, n) the pre-activations of the gate and candidate blocks, xin (B, 2H) a layer's input
    [h below | h_{t-1}], hp (B, H) the gathered h_{t-1}."""
    n = H // workers
    return (np.empty((B, weights.gates.b.shape[2]), np.float32), np.empty((B, n), np.float32),
            np.empty((B, 2 * H), np.float32), np.empty((B, H), np.float32))


@njit(**KERNEL)
def stack_step(cell, weights, state, tick, rows, tok, R, buffers, sync, worker, workers, phase):
    """Advance rows 0..R-1 by one step through every layer: read h, c of buffer tick % 2 (row i
    continues row rows[i], or row i if rows is None), the inputs tok (R,), and write this worker's
    units of h, c of the other buffer. state = (h, c, rh) as in the module docstring, buffers from
    :func:`step_buffers`; phase counts the barriers passed, and the new count is returned."""
    h, c, rh = state
    z, z_c, xin, hp = buffers
    L, H = h.shape[1], h.shape[3]
    n = H // workers
    lo = worker * n
    q = tick % 2
    h_in, h_out = h[q], h[1 - q]
    c_in, c_out = c[q], c[1 - q]
    for l in range(L):
        if rows is None:
            h_prev = h_in[l, :R]
        else:
            h_prev = hp[:R]
            for i in range(R):
                h_prev[i] = h_in[l, rows[i]]
        below = h_out[l - 1, :R]
        layer_products(weights.gates, l, worker, h_prev, below, tok, xin[:R], z[:R])
        if cell == LSTM:
            for i in range(R):
                j = i
                if rows is not None:
                    j = rows[i]
                cells.lstm_update(z[i], c_in[l, j, lo:lo + n], c_out[l, i, lo:lo + n],
                                  h_out[l, i, lo:lo + n])
        elif cell == RNN:
            for i in range(R):
                cells.rnn_update(z[i], h_out[l, i, lo:lo + n])
        else:
            for i in range(R):
                cells.gru_reset(z[i], h_prev[i, lo:lo + n], rh[l, i, lo:lo + n])
            phase += 1
            barrier(sync, worker, workers, phase)          # rh[l] whole: the candidate reads it
            layer_products(weights.candidate, l, worker, rh[l, :R], below, tok, xin[:R],
                           z_c[:R])
            for i in range(R):
                cells.gru_update(z[i, n:2 * n], z_c[i], h_prev[i, lo:lo + n],
                                 h_out[l, i, lo:lo + n])
        phase += 1
        barrier(sync, worker, workers, phase)
    return phase
