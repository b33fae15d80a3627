"""Scoring a word model (``--tokens words``): the probability of a text's characters.

The network predicts tokens (:mod:`charlm.text.words`); a token outside the vocabulary is predicted
as ``<UNK>`` and then also pays log P(token | <UNK>), its spelling under the character model the
checkpoint keeps (``words.*``). So

    log P(text) = sum_t log p(token_t | <EOS>, token_1 .. token_{t-1})  [+ log p(<EOS> | ...)]
                  + sum over the <UNK> tokens w of log P(w | <UNK>)

is a probability of the text itself, and ``bits_per_char`` = -log2 P(text) / characters (plus one
for the closing ``<EOS>`` in lines mode, as for a character model) compares with a character
model's. ``num_tokens`` counts the predicted tokens, ``unknown`` names the tokens read as
``<UNK>``, ``unknown_tokens`` and ``unknown_share`` count them; ``perplexity`` is per token.

Texts are scored as one batch, one column each; a file is read whole (a word model's corpus is
held in memory too) and scored as :mod:`charlm.scoring.scorer` scores a file, with the passes of
:mod:`charlm.scoring.passes`: in stream mode in segments warmed up on the ``BURN_IN`` tokens
before them (``exact``: one sequential pass), in lines mode each non-blank line an example of its
own. With dynamic evaluation (:mod:`charlm.scoring.dynamic`) the tokens are read in order while
the model adapts, and the spellings are added as for static scoring: they do not depend on the
network's weights.
"""
from dataclasses import dataclass

import numpy as np

from ..errors import CorpusError
from ..network.engine import Engine
from ..text.textfile import read_text
from ..text.vocab import EOS, EOS_ID, UNK_ID
from . import passes


@dataclass
class WordScore(passes.Score):
    """A :class:`charlm.scoring.passes.Score` of a word model: ``log_prob`` includes the spelling
    of every ``<UNK>`` (``spelling_nats`` of it), and bits per character divide by ``num_chars``."""
    num_chars: int = 0               # characters of the text, plus one per <EOS> in lines mode
    unknown_tokens: int = 0          # tokens read as <UNK>
    spelling_nats: float = 0.0       # -log P of their spellings, part of -log_prob

    @property
    def bits_per_char(self):
        return -self.log2_prob / self.num_chars

    @property
    def unknown_share(self):
        return self.unknown_tokens / self.num_tokens

    def to_json(self):
        data = super().to_json()
        data.update(tokens="words", num_chars=self.num_chars, unknown_tokens=self.unknown_tokens,
                    unknown_share=self.unknown_share, spelling_nats=self.spelling_nats)
        if self.per_char is not None:
            data["per_token"] = data.pop("per_char")
            for entry in data["per_token"]:
                entry["token"] = entry.pop("char")
        return data


def score(model, texts, per_char=False, settings=None, label_row=0):
    """One :class:`WordScore` per text, scored as one batch (``per_char``: each token's log P,
    its spelling included); with dynamic evaluation ``settings``, each text read on its own while
    the model adapts, from the trained weights; with ``label_row`` (a label's token id,
    :func:`charlm.text.labels.label_row`), the label read at every step. The spellings do not
    depend on the label."""
    lines = model.config.mode == "lines"
    vocab = model.vocab
    ids = [vocab.encode(text) for text in texts]
    static = [None] * len(texts)        # each text's token log-probabilities, without spellings
    if settings is None:
        rows = np.full(len(texts), label_row) if label_row else None
        for chosen, logp in passes.example_log_probs(Engine(model.network), ids, lines, rows):
            for col, i in enumerate(chosen):
                static[i] = logp[:len(ids[i]) + lines, col].astype(np.float64)
    results = []
    for text, text_ids, logp in zip(texts, ids, static):
        tokens = vocab.split(text) + [EOS] * lines
        spelt = np.array([vocab.spelling.log_prob(t) if v == UNK_ID else 0.0
                          for t, v in zip(tokens, text_ids)] + [0.0] * lines)
        if settings is None:
            terms, dynamic = logp + spelt, None
            log_prob = float(terms.sum())
        else:
            read = np.concatenate([[EOS_ID], text_ids] + [[EOS_ID]] * lines)
            log_prob, _, dynamic = _adapted(model, settings, sequence=read)
            log_prob += float(spelt.sum())
        results.append(WordScore(text, log_prob, len(text_ids) + lines, vocab.unknown(text),
                                 list(zip(tokens, terms.tolist())) if per_char else None,
                                 dynamic=dynamic, num_chars=len(text) + lines,
                                 unknown_tokens=int((text_ids == UNK_ID).sum()),
                                 spelling_nats=0.0 - float(spelt.sum())))
    return results


def score_file(model, path, encoding="utf-8", progress=None, exact=False, settings=None):
    """The figures of the whole file at path (see the module docstring); with dynamic evaluation
    ``settings``, read in order while the model adapts (``charlm.scoring.dynamic``)."""
    vocab = model.vocab
    text = read_text(path, encoding)
    lines = model.config.mode == "lines"
    examples = [line for line in text.split("\n") if line.strip()] if lines else [text] * bool(text)
    if not examples:
        raise CorpusError(f"{path} is empty: there is nothing to score")
    ids = [vocab.encode(t) for t in examples]
    engine, dynamic = Engine(model.network), None
    if settings is not None:
        if lines:
            log_prob, tokens, dynamic = _adapted(model, settings, lines_ids=ids)
        else:
            read = np.concatenate([[EOS_ID], ids[0]])
            log_prob, tokens, dynamic = _adapted(model, settings, sequence=read)
        burn_in = None if lines else 0
    elif lines:
        log_prob, tokens = passes.lines_log_prob(engine, ids)
        burn_in = None
    elif exact:
        tally = passes.Tally(None)
        full = np.concatenate([[EOS_ID], ids[0]]).astype(np.int32)
        passes.score_rest(engine, full, 0, 1, passes.MAX_SEGMENT, 0, tally, engine.zero_state(1))
        log_prob, tokens, burn_in = tally.log_prob, tally.tokens, 0
    else:
        log_prob, tokens = passes.stream_log_prob(engine, ids[0])
        burn_in = passes.BURN_IN
    chars = sum(len(t) + 1 for t in examples) if lines else len(text)
    unknown, spelling = {}, 0.0
    for example in examples:
        for t in vocab.split(example):
            if t not in vocab.index:
                unknown[t] = unknown.get(t, 0) + 1
                spelling -= vocab.spelling.log_prob(t)
    if progress is not None:
        size = len(text.encode("utf-8"))
        progress(size, size)
    return WordScore(None, log_prob - spelling, tokens, list(unknown), file=str(path),
                     burn_in=burn_in, dynamic=dynamic, num_chars=chars,
                     unknown_tokens=sum(unknown.values()), spelling_nats=spelling)


def _adapted(model, settings, sequence=None, lines_ids=None):
    """(log-probability of the tokens, targets, the settings and segments as ``--json`` states
    them) of an <EOS>-led ``sequence`` of ids, or of lines (``lines_ids``, each from the zero
    state), read in order while the model adapts."""
    from .dynamic import Adapter, adapt_lines, adapt_sequence
    with Adapter(model.network, settings) as adapter:
        if lines_ids is not None:
            log_prob, tokens = adapt_lines(adapter, lines_ids,
                                           lambda batch: passes.pad_examples(batch, lines=True))
        else:
            log_prob, tokens, _ = adapt_sequence(adapter, sequence.astype(np.int32))
        return log_prob, tokens, dict(settings.to_json(), segments=adapter.steps)
