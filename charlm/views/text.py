"""How the views read a text (docs/views-and-report.md): as one sequence of token ids, from
<EOS>. A token is a character, or a word model's token (``charlm.text.words.split``). A
lines-mode model never read a newline in training (each line was an example ending in <EOS>), so
for it a newline is read as <EOS>, its own end of a line; the state carries on."""
from ..text.vocab import EOS_ID, require_unicode


def text_ids(model, text):
    """int32 token ids (n,) of text's tokens for this model (unknown tokens: <UNK>)."""
    require_unicode(text)
    ids = model.vocab.encode(text)
    if model.config.mode == "lines":
        ids[[t == "\n" for t in model.vocab.split(text)]] = EOS_ID
    return ids


def unknown_tokens(model, text):
    """The distinct tokens of text that :func:`text_ids` reads as <UNK>."""
    unknown = model.vocab.unknown(text)
    return [t for t in unknown if t != "\n"] if model.config.mode == "lines" else unknown
