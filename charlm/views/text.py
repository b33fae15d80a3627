"""How the views read a text: as one sequence of token ids, from <EOS>, as SPEC.md's "Views"
defines. A lines-mode model never read a newline in training (each line was an example ending in
<EOS>), so for it a newline is read as <EOS>, its own end of a line; the state carries on."""
import numpy as np

from ..errors import UsageError
from ..vocab import EOS_ID


def require_unicode(text):
    """Raise UsageError if text holds a lone surrogate (bytes that are not UTF-8, passed on by
    Python from the command line): it is no character, and no token id can stand for it."""
    if any("\ud800" <= ch <= "\udfff" for ch in text):
        raise UsageError(f"{text[:40]!r} is not valid Unicode text (it holds a lone surrogate, "
                         "e.g. from bytes that are not UTF-8)")


def text_ids(model, text):
    """int32 token ids (n,) of text's characters for this model (unknown characters: <UNK>)."""
    require_unicode(text)
    ids = model.vocab.encode(text)
    if model.config.mode == "lines":
        ids[np.frombuffer(text.encode("utf-32-le"), np.uint32) == ord("\n")] = EOS_ID
    return ids
