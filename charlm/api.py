"""The Python API: ``charlm.load(path)`` gives a :class:`Model` that samples and scores.

    >>> import charlm
    >>> model = charlm.load("charlm.npz")
    >>> model.sample(num=3, temperature=0.8, seed=1)
    >>> model.score("Anna").bits_per_char
"""
from . import checkpoint
from .model import Network

DEFAULT_MODEL = "charlm.npz"


class Model:
    """A trained model: its config, vocabulary and best weights, ready to sample and score."""

    def __init__(self, ckpt, path=None):
        self.path = path
        self.config = ckpt.config
        self.vocab = ckpt.vocab
        self.checkpoint = ckpt
        c = ckpt.config
        self.network = Network(c.cell, len(ckpt.vocab), c.hidden_size, c.num_layers, ckpt.weights)

    @property
    def num_parameters(self):
        return int(self.network.params.flat.size)

    def sample(self, num=1, length=None, temperature=1.0, top_k=0, top_p=1.0, prime="",
               stop_at_eos=None, seed=None, on_text=None):
        """Draw ``num`` samples (see :func:`charlm.sampler.sample` for every option)."""
        from .sampler import sample
        return sample(self, num=num, length=length, temperature=temperature, top_k=top_k,
                      top_p=top_p, prime=prime, stop_at_eos=stop_at_eos, seed=seed, on_text=on_text)

    def score(self, text, per_char=False):
        """Log-probability of text as SPEC.md defines it (see :func:`charlm.scorer.score`)."""
        from .scorer import score
        return score(self, text, per_char=per_char)

    def score_file(self, path, encoding="utf-8", progress=None, exact=False):
        """The same figures for a whole file, in batched chunks, or in one sequential pass with
        ``exact=True`` (see :func:`charlm.scorer.score_file`)."""
        from .scorer import score_file
        return score_file(self, path, encoding=encoding, progress=progress, exact=exact)

    def __repr__(self):
        c = self.config
        return (f"<charlm.Model {c.cell} {c.num_layers}x{c.hidden_size}, {c.mode} mode, "
                f"{len(self.vocab)} tokens, {self.num_parameters:,} parameters>")


def load(path=DEFAULT_MODEL):
    """Load a checkpoint for sampling and scoring; raises CheckpointError if it cannot be used."""
    return Model(checkpoint.load(path), path)
