"""Classifying a text with a model trained with labels: a generative classifier, by Bayes' rule.

A labelled model gives P(text | label): the text read with the label at every step
(:mod:`charlm.text.labels`), its closing ``<EOS>`` included, as ``charlm score --label`` reports
it: for a word model, with the spelling of each ``<UNK>`` (:mod:`charlm.scoring.words`), a factor
that does not depend on the label and so cancels from every posterior. With the prior P(label)
from the training counts (add-one smoothed, so that no label is impossible, (n_k + 1) / (N + K)),

    P(label | text) = P(text | label) P(label) / sum_k P(text | k) P(k)

computed in log space (a softmax over log P(text | k) + log P(k)). All K labels of a text are one
batched pass: K columns of the no-grad engine (:class:`charlm.network.engine.Engine`), one per
label, that differ only in the label they read; texts of similar length share a batch of at most
``passes.COLUMNS`` columns.
"""
from dataclasses import dataclass, field

import numpy as np

from ..errors import UsageError
from ..network.engine import Engine, softmax
from ..text import labels as text_labels
from ..text.vocab import require_unicode
from . import scorer
from . import passes


@dataclass
class Classification:
    """One text's most probable label and every label's posterior."""
    text: str
    label: str                 # the most probable (ties: the first in id order)
    posterior: dict            # {label: P(label | text)}, in id order; sums to 1
    log_likelihood: dict = field(repr=False)     # {label: log P(text | label)} in nats
    true: str | None = None    # with --eval: the label the file gives

    def to_json(self):
        data = {"text": self.text, "label": self.label, "posterior": self.posterior}
        if self.true is not None:
            data["true"] = self.true
        return data


def _checked(texts):
    for t in texts:
        if not isinstance(t, str):
            raise UsageError(f"can only classify text, not {type(t).__name__}")
        if not t:
            raise UsageError("cannot classify an empty text: there is no character to read")
        require_unicode(t)


def log_prior(config):
    """(K,) log P(label): add-one smoothed training counts."""
    counts = np.asarray(config.label_counts or [0] * len(config.labels), np.float64)
    return np.log((counts + 1.0) / (counts.sum() + len(counts)))


def log_likelihoods(model, texts, progress=None):
    """(n, K) float64 log P(text_i | label_k) in nats, and (n,) the tokens each predicts."""
    config = model.config
    rows = text_labels.label_rows(model.vocab, config.labels)
    K = len(rows)
    ids = [model.vocab.encode(t) for t in texts]
    out = np.zeros((len(texts), K), np.float64)
    # example j * K + k is text j read with label k: K copies of a text are of equal length, so
    # they stay together, and batches of a multiple of K examples hold whole texts
    examples = [text_ids for text_ids in ids for _ in range(K)]
    batches = passes.example_log_probs(Engine(model.network), examples, True,
                                       np.tile(rows, len(texts)), max(1, passes.COLUMNS // K) * K)
    done = 0
    for chosen, logp in batches:
        out[np.asarray(chosen[::K]) // K] = logp.sum(axis=0).reshape(-1, K)
        done += len(chosen) // K
        if progress is not None:
            progress(done, len(texts))
    if model.vocab.kind == "words":     # the <UNK>s' spellings, the same under every label
        out -= np.array([model.vocab.costs(t)[2] for t in texts])[:, None]
    return out, np.array([len(i) + 1 for i in ids], np.int64)


def classify(model, texts, progress=None):
    """:class:`Classification` of one text, or a list of them for a list. ``progress(done,
    total)`` is called after each batch of texts."""
    text_labels.require_labels(model, "classify")
    single = isinstance(texts, str)
    texts = [texts] if single else list(texts)
    _checked(texts)
    names = model.config.labels
    loglik, _ = log_likelihoods(model, texts, progress)
    post = softmax(loglik + log_prior(model.config))     # Bayes' rule over the labels
    results = [Classification(t, names[int(np.argmax(p))], dict(zip(names, p.tolist())),
                              dict(zip(names, ll.tolist())))
               for t, p, ll in zip(texts, post, loglik)]
    return results[0] if single else results


def score_given(model, texts, label, per_char=False):
    """:class:`charlm.scoring.passes.Score` of each text given label: log P(text | label), the
    text read with the label at every step (``None`` or ``<any>``: without, the plain score)."""
    row = text_labels.label_row(model, label)
    single = isinstance(texts, str)
    texts = [texts] if single else list(texts)
    _checked(texts)
    results = scorer.score_texts(model, texts, per_char, row)
    return results[0] if single else results


def evaluate(model, path, encoding="utf-8", progress=None):
    """Classify the ``LABEL<TAB>TEXT`` lines of path; returns (classifications with ``true``
    set, figures): accuracy, the confusion matrix (rows: the true label, columns: the predicted
    one, both in id order) and the majority-label baseline (always the most frequent training
    label). A label the model does not know raises UsageError naming it."""
    from ..text.textfile import read_text
    text_labels.require_labels(model, "classify --eval")
    pairs = text_labels.parse(read_text(path, encoding), path, "classify")
    names = model.config.labels
    unknown = sorted({label for label, _ in pairs} - set(names))
    if unknown:
        raise UsageError(f"{path} has labels the model does not know: "
                         f"{', '.join(map(repr, unknown[:5]))}; it knows "
                         f"{', '.join(names)}")
    results = classify(model, [body for _, body in pairs], progress)
    index = {name: k for k, name in enumerate(names)}
    confusion = np.zeros((len(names), len(names)), np.int64)
    for r, (label, _) in zip(results, pairs):
        r.true = label
        confusion[index[label], index[r.label]] += 1
    majority = names[int(np.argmax(model.config.label_counts or np.zeros(len(names))))]
    n = len(pairs)
    figures = {
        "accuracy": float(np.trace(confusion)) / n,
        "examples": n,
        "confusion": {"labels": list(names), "matrix": confusion.tolist()},
        "majority": {"label": majority,
                     "accuracy": sum(label == majority for label, _ in pairs) / n},
    }
    return results, figures
