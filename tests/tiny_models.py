"""Small randomly initialised models for the sampling tests (beam, stop strings, interactive,
novelty): built in memory, no training."""
import numpy as np

from charlm.store import checkpoint
from charlm.api import Model
from charlm.store.checkpoint import Checkpoint
from charlm.config import Config
from charlm.network.stack import FlatArrays, init_parameters, parameter_shapes
from charlm.text.vocab import EOS_ID, Vocab

TEXT = "the quick brown fox jumps over the lazy dog; PACK MY BOX WITH FIVE DOZEN JUGS."


def make_model(cell="lstm", hidden=8, layers=2, mode="stream", seed=0, eos_bias=0.0, chars=TEXT):
    """A model over the characters of ``chars`` with random weights and biases (so that the
    biases are exercised); eos_bias shifts <EOS>'s output bias."""
    vocab = Vocab.from_text(chars)
    config = Config(cell=cell, hidden_size=hidden, num_layers=layers, mode=mode, dropout=0.0)
    params = FlatArrays(parameter_shapes(cell, len(vocab), hidden, layers))
    init_parameters(params, cell, np.random.default_rng(seed))
    rng = np.random.default_rng(seed + 1)
    for name, _ in params.shapes:
        if name.endswith("b"):
            params[name][:] += rng.normal(0, 0.5, params[name].shape).astype(np.float32)
    params["out.W"][:] *= 3.0          # peaked distributions, like a trained model's
    params["out.b"][EOS_ID] += eos_bias
    return Model(Checkpoint(config, vocab, params))


def save_model(model, path):
    """Write the model as a checkpoint (weights only) and return the path."""
    checkpoint.save(path, model.checkpoint)
    return path


def make_word_model(text=TEXT, cell="lstm", hidden=8, layers=1, mode="stream", seed=0,
                    bidirectional=False, eos_bias=0.0):
    """A word model (--tokens words) over the tokens of text, every one kept, with random
    weights: its vocabulary and <UNK> spelling as training would count them. eos_bias shifts
    <EOS>'s output bias."""
    from charlm.network.shapes import shapes_for
    from charlm.text.corpus import Corpus
    from charlm.text.wordcorpus import WordCorpus
    config = Config(cell=cell, hidden_size=hidden, num_layers=layers, mode=mode, dropout=0.0,
                    tokens="words", vocab_size=10_000, bidirectional=bidirectional, val_frac=0.0)
    vocab, _ = WordCorpus(Corpus(text, "text")).vocab(config)
    params = FlatArrays(shapes_for(config, len(vocab)))
    init_parameters(params, cell, np.random.default_rng(seed))
    params["out.W"][:] *= 3.0
    params["out.b"][EOS_ID] += eos_bias
    return Model(Checkpoint(config, vocab, params))
