"""The Python API: ``charlm.load(path)`` gives a :class:`Model` that samples, scores and fills in.

    >>> import charlm
    >>> model = charlm.load("charlm.npz")
    >>> model.sample(num=3, temperature=0.8, seed=1)
    >>> model.score("Anna").bits_per_char
    >>> model.fill("An_a").text
    >>> labelled = charlm.load("labelled.npz")      # trained with --labels
    >>> labelled.sample(label="poetry", num=3)
    >>> labelled.classify(["a text", "another"])[0].label
"""
from .store import checkpoint
from .network.bidirectional import network_for
from .config import DEFAULT_MODEL
from .errors import UsageError



class Model:
    """A trained model: its config, vocabulary and best weights, ready to sample and score."""

    def __init__(self, ckpt, path=None):
        self.path = path
        self.config = ckpt.config
        self.vocab = ckpt.vocab
        self.checkpoint = ckpt
        self.network = network_for(ckpt.config, len(ckpt.vocab), ckpt.weights)

    @property
    def num_parameters(self):
        return int(self.network.params.flat.size)

    def sample(self, num=None, length=None, temperature=1.0, top_k=0, top_p=1.0, prime="",
               stop_at_eos=None, seed=None, on_text=None, stop=None, keep_stop=False, beam=None,
               length_penalty=0.0, label=None, match=None, exact=False):
        """Draw ``num`` samples (default 1), or with ``beam=K`` return the most probable
        continuations a beam search finds (see :func:`charlm.generation.sampler.sample` for every
        option); ``label`` generates text of that label (a model trained with labels);
        ``match`` a regular expression every text fully matches (docs/patterns.md)."""
        from .generation.sampler import sample
        self.require_left_to_right("sample from")
        return sample(self, num=num, length=length, temperature=temperature, top_k=top_k,
                      top_p=top_p, prime=prime, stop_at_eos=stop_at_eos, seed=seed, on_text=on_text,
                      stop=stop, keep_stop=keep_stop, beam=beam, length_penalty=length_penalty,
                      label=label, match=match, exact=exact)

    def stream(self, length=None, temperature=1.0, top_k=0, top_p=1.0, prime="", stop_at_eos=None,
               seed=None, stop=None, keep_stop=False, label=None, match=None):
        """One sample as a generator of text pieces as they are generated (see
        :func:`charlm.generation.sampler.stream`): ``for piece in model.stream(): print(piece, end="")``."""
        from .generation.sampler import stream
        self.require_left_to_right("sample from")
        return stream(self, length=length, temperature=temperature, top_k=top_k, top_p=top_p,
                      prime=prime, stop_at_eos=stop_at_eos, seed=seed, stop=stop,
                      keep_stop=keep_stop, label=label, match=match)

    def beam_search(self, prime="", beam=8, length=None, stop_at_eos=None, length_penalty=0.0,
                    stop=None, keep_stop=False, label=None, match=None):
        """The ``beam`` best continuations of ``prime`` found, best first, each with its text,
        log-probability and how it ended (see :func:`charlm.generation.beam.beam_search`)."""
        from .generation.beam import beam_search
        self.require_left_to_right("search")
        return beam_search(self, prime=prime, beam=beam, length=length, stop_at_eos=stop_at_eos,
                           length_penalty=length_penalty, stop=stop, keep_stop=keep_stop,
                           label=label, match=match)

    def novelty(self, texts, prime="", corpus=None):
        """For each sample in texts (generated after ``prime``), whether it appears in the training
        text: the file ``corpus``, or the one the checkpoint records (see :mod:`charlm.generation.novelty`)."""
        from .generation.novelty import reference
        check = reference(self, corpus)
        return [check.check(text, prime) for text in texts]

    def score(self, text, per_char=False, dynamic=None, windows=None, label=None,
              **window_options):
        """Log-probability of text as docs/model.md defines it; ``dynamic=True`` (or a dict of
        settings) adapts the model as it reads, ``windows=N`` adds nanoGPT's windowed figure
        (see :func:`charlm.scoring.scorer.score` and docs/dynamic-evaluation.md); ``label``
        gives log P(text | label) for a model trained with labels (docs/labels.md)."""
        from .scoring.options import settings_from
        from .scoring.scorer import score
        self.require_left_to_right("score with")
        if label is not None:
            from .scoring.classify import score_given
            if settings_from(dynamic) is not None or windows is not None:
                raise UsageError("label= scores with the trained weights: no dynamic= or windows=")
            return score_given(self, text, label, per_char)
        return score(self, text, per_char=per_char, dynamic=dynamic, windows=windows,
                     **window_options)

    def score_file(self, path, encoding="utf-8", progress=None, exact=False, dynamic=None,
                   windows=None, **window_options):
        """The same figures for a whole file, in batched chunks, or in one sequential pass with
        ``exact=True``; ``dynamic=`` and ``windows=`` as in :meth:`score` (see
        :func:`charlm.scoring.scorer.score_file`)."""
        from .scoring.scorer import score_file
        self.require_left_to_right("score with")
        return score_file(self, path, encoding=encoding, progress=progress, exact=exact,
                          dynamic=dynamic, windows=windows, **window_options)

    @property
    def labels(self):
        """The label names of a model trained with labels, in id order ([] without)."""
        return list(self.config.labels or [])

    def classify(self, texts, progress=None):
        """The most probable label of each text (one text, or a list) and every label's
        posterior, P(label | text) by Bayes' rule with the training counts as the prior (see
        :func:`charlm.scoring.classify.classify`)."""
        from .scoring.classify import classify
        self.require_left_to_right("classify with")
        return classify(self, texts, progress=progress)

    def fill(self, text, blank="_", top=3, left_only=False):
        """Fill in every ``blank`` of text (one text, or a list: see :func:`charlm.scoring.fill.fill`)."""
        from .scoring.fill import fill
        return fill(self, text, blank=blank, top=top, left_only=left_only)

    def export(self, path, to=None, force=False):
        """Write the model to path for another runtime: ``to="onnx"`` (standard RNN/GRU/LSTM
        operators) or ``"torch"`` (a ``.safetensors`` state dict), by default from path's
        extension; an existing file only with ``force``. Returns the format written (see
        :mod:`charlm.export` and docs/export.md)."""
        from .export import export
        return export(self.checkpoint, path, to, source=self.path, force=force)

    def require_left_to_right(self, action):
        """Raise UsageError unless this model reads left to right (sampling and scoring need it)."""
        if self.config.bidirectional:
            raise UsageError(f"cannot {action} {self.path or 'this model'}: it is bidirectional "
                             "(it predicts each character from the text on both sides), so it "
                             "gives no probability of a text and cannot generate one; use "
                             "`charlm fill`, or a model trained without --bidirectional")

    def __repr__(self):
        c = self.config
        return (f"<charlm.Model {c.cell} {c.num_layers}x{c.hidden_size}, "
                f"{'bidirectional, ' if c.bidirectional else ''}{c.mode} mode, "
                f"{len(self.vocab)} tokens, {self.num_parameters:,} parameters>")


def load(path=DEFAULT_MODEL):
    """Load a checkpoint for sampling and scoring; raises CheckpointError if it cannot be used."""
    return Model(checkpoint.load(path), path)
