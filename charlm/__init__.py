"""charlm: train character-level RNN, GRU and LSTM language models; sample and score text.

Importing charlm is cheap: Numba and the kernels load only when a model is used.
"""
__version__ = "0.1.0"


def load(path="charlm.npz"):
    """Load a trained checkpoint as a :class:`charlm.api.Model` (``.sample()``, ``.score()``,
    ``.fill()``)."""
    from .api import load as _load
    return _load(path)


def train(corpus=None, **options):
    """Train a model on corpus (default: the bundled names) and return the :class:`charlm.api.Model`;
    options are the fields of :class:`charlm.config.Config` plus ``out``, ``resume``, ``force``."""
    from .training.trainer import train_model
    return train_model(corpus, **options)
