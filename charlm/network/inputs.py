"""Layer 0's input: the row of W_x of each input token, plus, for a labelled model, the row of its
label at every step (docs/labels.md, "The conditioning").

An input id i of a (T, B) batch reads token ``i % V`` and, when ``i >= V``, the label whose token
is ``i // V`` (a label's token id is at least 2, so an id below V reads no label):

    z0_t = W_x[i_t % V] + W_x[i_t // V]   (the second term only for i_t >= V)

so a label is a one-hot beside the one-hot of the character, and its vector is its token's row
of W_x (:func:`charlm.text.labels.labelled_ids` makes such ids). The ids travel through the
training pass and the no-grad engine as any ids do; only the gather below and its gradient read
them. A batch whose ids are all below V (every unlabelled model) takes the plain Numba gather,
nothing else.
"""
import numpy as np

from ..kernels.linalg import one_hot_rows, scatter_add_rows


def _split(ids, V):
    ids = np.asarray(ids)
    return (ids % V).astype(ids.dtype), ids // V


def gather(w_x, ids, out):
    """out (N, D) = the layer-0 input of ids (N,): ``one_hot_rows`` plus each id's label row."""
    V = w_x.shape[0]
    if ids.size == 0 or int(ids.max()) < V:
        one_hot_rows(w_x, ids, out)
        return
    chars, labels = _split(ids, V)
    one_hot_rows(w_x, chars, out)
    for label in np.unique(labels[labels > 0]):
        out[labels == label] += w_x[label]


def scatter(dw_x, ids, dz):
    """The gradient of :func:`gather` with respect to W_x, added into dw_x from dz (N, D)."""
    V = dw_x.shape[0]
    if ids.size == 0 or int(ids.max()) < V:
        scatter_add_rows(dw_x, ids, dz)
        return
    chars, labels = _split(ids, V)
    scatter_add_rows(dw_x, chars, dz)
    for label in np.unique(labels[labels > 0]):
        dw_x[label] += dz[labels == label].sum(axis=0)


def with_label(network, label_row):
    """network itself for label_row 0; else a copy whose layer 0 reads the label at every step
    from its bias: b0 + W_x[label_row] (one label for every column and step, as a generation has:
    so the Numba generation kernels need no label of their own)."""
    if not label_row:
        return network
    params = network.params.like()
    params.flat[:] = network.params.flat
    bias = params["layers.0.b"]                  # a view into params.flat
    bias += params["layers.0.W_x"][label_row]
    return type(network)(network.cell, network.vocab_size, network.hidden_size,
                         network.num_layers, params)
