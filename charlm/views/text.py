"""How the views read a text (docs/views-and-report.md), as training read its corpus. A token is a
character, or a word model's token (``charlm.text.words.split``). A stream-mode model reads the
text as one sequence from <EOS>. A lines-mode model reads each line as an example of its own, from
the zero state and <EOS>, as training did; its newline is read as the <EOS> that ends the line
(a lines-mode model never read a newline in training)."""
import numpy as np

from ..text.vocab import EOS_ID, require_unicode


def text_pieces(model, text):
    """[int32 token ids], text's tokens for this model (unknown ones: <UNK>) in the pieces read
    each from the zero state: the whole text in stream mode, each line and its end in lines
    mode. Together they hold one id per token of the text, in order."""
    require_unicode(text)
    ids = model.vocab.encode(text)
    if model.config.mode != "lines":
        return [ids]
    newline = np.array([t == "\n" for t in model.vocab.split(text)], np.bool_)
    ids[newline] = EOS_ID
    return [piece for piece in np.split(ids, np.flatnonzero(newline) + 1) if len(piece)]


def unknown_tokens(model, text):
    """The distinct tokens of text that :func:`text_pieces` reads as <UNK>."""
    unknown = model.vocab.unknown(text)
    return [t for t in unknown if t != "\n"] if model.config.mode == "lines" else unknown
