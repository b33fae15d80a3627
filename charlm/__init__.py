"""charlm: train character-level RNN, GRU and LSTM language models; sample and score text.

Importing charlm is cheap: Numba and the kernels load only when a model is used.
"""
from .config import DEFAULT_MODEL
from .version import __version__  # noqa: F401  (charlm.__version__)


def load(path=DEFAULT_MODEL):
    """Load a trained checkpoint as a :class:`charlm.api.Model` (``.sample()``, ``.score()``,
    ``.fill()``)."""
    from .api import load as _load
    return _load(path)


def train(corpus=None, out=DEFAULT_MODEL, **options):
    """Train a model on corpus (default: the bundled names), write it to ``out`` and return it as
    a :class:`charlm.api.Model`; options are the fields of :class:`charlm.config.Config` plus
    ``resume``, ``force``, ``encoding`` and ``reporter``
    (see :func:`charlm.training.trainer.new_trainer`)."""
    from .api import load as _load
    from .training.trainer import new_trainer
    new_trainer(corpus, out, **options).run()
    return _load(out)


def import_model(path, out=None, vocab=None, mode=None, force=False):
    """A :class:`charlm.api.Model` of a PyTorch ``nn.RNN``/``nn.LSTM`` state dict in the
    ``.safetensors`` file at path (the keys docs/export.md names), written as a charlm checkpoint
    at ``out`` when given (an existing file only with ``force``). ``vocab``: the tokens in id order
    (a list, or a JSON file's path), by default from the file's metadata; ``mode``: ``"stream"`` or
    ``"lines"``, by default from the metadata, else stream."""
    from .api import Model
    from .export import import_checkpoint
    return Model(import_checkpoint(path, vocab=vocab, mode=mode, out=out, force=force), out)
