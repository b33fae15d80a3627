"""What a network's units track in a text: every unit's activation after each token (a
character, or a word model's token), simple features of the text at each token, and the units
whose activation follows a feature best (Pearson's correlation).

Alignment: activation i is the state after reading token i (the network starts from the zero
state, reads <EOS>, then the text), so a unit that fires on a token lights that token up.
Feature i describes the text at token i, the same alignment.
"""
import numpy as np

from ..network.engine import Engine
from ..text.vocab import EOS_ID
from ..text.words import is_word
from .text import text_pieces

STATE_NAMES = ("h", "c")        # the state axis S, in the cell table's order
QUOTES = {'"': None, "“": True, "”": False}   # straight quotes toggle; curly ones open or close
OPENERS, CLOSERS = {"(": "paren", "[": "bracket", "{": "bracket"}, {")": "paren", "]": "bracket",
                                                                    "}": "bracket"}
VOWELS = set("aeiouAEIOU")
SENTENCE_ENDS = set(".!?")
CHARS, WORDS, BOTH = ("chars",), ("words",), ("chars", "words")
# Each feature and the token kinds it describes, in the order features() lists them. A feature of
# both kinds is one definition over token strings that, on one-character tokens, is the
# character's; those that would be constant or repeat another for one kind are left out of it
# (every word token is a word's start, and has no vowel).
FEATURE_KINDS = {
    "inside quotes": BOTH, "bracket depth": BOTH, "parenthesis depth": BOTH,
    "position in line": BOTH, "to end of line": BOTH, "position in sentence": WORDS,
    "start of word": CHARS, "position in word": CHARS, "vowel": CHARS, "uppercase": CHARS,
    "digit": CHARS, "word": WORDS, "capitalised word": WORDS, "number": WORDS, "space": BOTH,
    "punctuation": BOTH, "newline": BOTH,
}
# the features that say what one token is, by the token alone
TOKEN_CLASSES = {
    "vowel": lambda t: t in VOWELS,
    "uppercase": str.isupper,
    "digit": str.isdigit,
    "word": is_word,
    "capitalised word": lambda t: is_word(t) and t[0].isupper(),
    "number": lambda t: t[0].isdigit(),
    "space": lambda t: t.strip(" \t") == "",                           # spaces and tabs only
    "punctuation": lambda t: not t.isspace() and not any(c.isalnum() for c in t),
    "newline": lambda t: t == "\n",
}


def activations(model, text):
    """(L, S, n, H) float32: every layer's state (h, and the LSTM's c) after each of the n
    tokens of text, read as :func:`text.text_pieces` says (``model``: a charlm.api.Model)."""
    engine = Engine(model.network)
    states = [engine.states(np.concatenate([[EOS_ID], ids]).astype(np.int32)[:, None],
                            engine.zero_state(1))[:, :, 1:, 0]
              for ids in text_pieces(model, text)]
    return np.concatenate(states, axis=2)


def features(tokens, kind="chars"):
    """{name: (n,) float64}: simple features of the text at each of its n tokens (strings; for
    a character model, its characters), those of ``FEATURE_KINDS`` that describe ``kind``.

    inside quotes         between double quotes: 1 from the opening quote to the token before
                          the closing one
    bracket depth         [ ] and { } open after reading this token
    parenthesis depth     ( ) likewise
    position in line      tokens read since the last newline (a newline: 0)
    to end of line        steps to the next newline: 1 just before it, 0 on it (the end of the
                          text counts as one)
    position in sentence  tokens read since the last . ! or ? (0 on it)
    start of word         a letter after a non-letter
    position in word      letters since the word began (1 on its first letter; 0 outside words)
    vowel, uppercase, digit, word, capitalised word (a word whose first letter is a capital),
    number (a token that starts with a digit), space (spaces and tabs), punctuation (no letter,
    digit or whitespace), newline     the token is one
    """
    names = [name for name, kinds in FEATURE_KINDS.items() if kind in kinds]
    n = len(tokens)
    out = {name: np.zeros(n) for name in FEATURE_KINDS}
    quoted, depth, column, sentence, in_word = False, {"paren": 0, "bracket": 0}, 0, 0, 0
    for i, t in enumerate(tokens):
        if t in QUOTES:
            quoted = (not quoted) if QUOTES[t] is None else QUOTES[t]
        if t in OPENERS:
            depth[OPENERS[t]] += 1
        elif t in CLOSERS:
            depth[CLOSERS[t]] = max(0, depth[CLOSERS[t]] - 1)
        column = 0 if t == "\n" else column + 1
        sentence = 0 if t in SENTENCE_ENDS else sentence + 1
        in_word = in_word + 1 if t.isalpha() else 0
        out["inside quotes"][i] = quoted
        out["bracket depth"][i], out["parenthesis depth"][i] = depth["bracket"], depth["paren"]
        out["position in line"][i] = column
        out["position in sentence"][i] = sentence
        out["position in word"][i] = in_word
        out["start of word"][i] = in_word == 1
        for name, is_one in TOKEN_CLASSES.items():
            out[name][i] = is_one(t)
    left = 0
    for i in range(n - 1, -1, -1):
        out["to end of line"][i] = left = 0 if tokens[i] == "\n" else left + 1
    return {name: out[name] for name in names}


def rank_units(acts, feats, top=10, per_feature=None, layer=None, state=None):
    """The (unit, feature) pairs with the largest |Pearson correlation| between the unit's
    activation and the feature along the text, best first: [{"layer", "unit", "state", "feature",
    "correlation"}] (at most ``top``, and at most ``per_feature`` for any one feature), over every
    layer and state or only ``layer`` and ``state`` ("h" or "c") where given.
    acts (L, S, n, H) as :func:`activations` gives; feats {name: (n,)}. Constant series (a unit
    that never moves, a feature absent from the text) have no correlation and are skipped."""
    L, S, n, H = acts.shape
    units = np.asarray(acts, np.float64).transpose(2, 0, 1, 3).reshape(n, L * S * H)
    names = list(feats)
    values = np.stack([np.asarray(feats[k], np.float64) for k in names], axis=1)    # (n, F)
    a, a_norm = _centred(units)
    f, f_norm = _centred(values)
    chosen = np.ones((L, S, H), bool)
    if layer is not None:
        chosen[np.arange(L) != layer] = False
    if state is not None:
        chosen[:, np.arange(S) != STATE_NAMES.index(state)] = False
    live_a, live_f = (a_norm > 0) & chosen.reshape(-1), f_norm > 0
    r = (a[:, live_a].T @ f[:, live_f]) / np.outer(a_norm[live_a], f_norm[live_f])
    unit_index, feature_index = np.flatnonzero(live_a), np.flatnonzero(live_f)
    taken = {}
    ranking = []
    for flat in np.argsort(-np.abs(r), axis=None, kind="stable"):
        i, j = np.unravel_index(flat, r.shape)
        name = names[feature_index[j]]
        if per_feature is not None and taken.get(name, 0) >= per_feature:
            continue
        taken[name] = taken.get(name, 0) + 1
        u = int(unit_index[i])
        ranking.append({"layer": u // (S * H), "unit": u % H, "state": STATE_NAMES[u // H % S],
                        "feature": name, "correlation": float(r[i, j])})
        if len(ranking) == top:
            break
    return ranking


def correlations(values, feats):
    """{feature: Pearson r of values (n,) and the feature, or None where either is constant}."""
    x, x_norm = _centred(np.asarray(values, np.float64))
    out = {}
    for name, feature in feats.items():
        f, f_norm = _centred(np.asarray(feature, np.float64))
        out[name] = float(x @ f / (x_norm * f_norm)) if x_norm and f_norm else None
    return out


def _centred(x):
    """x minus its column means, and each column's norm: 0 for a constant column (a 1-d x is one
    column)."""
    centred = x - x.mean(axis=0)
    norm = np.sqrt((centred * centred).sum(axis=0))
    return centred, np.where(np.ptp(x, axis=0) == 0, 0.0, norm)


# ---- the text coloured by one unit's activation ------------------------------------------------

NEGATIVE, NEUTRAL, POSITIVE = (33, 102, 172), (247, 247, 247), (178, 24, 43)   # blue, white, red


def colour_of(value, scale):
    """A diverging colour (r, g, b): blue for -scale, white for 0, red for +scale (clipped)."""
    x = max(-1.0, min(1.0, value / scale)) if scale > 0 else 0.0
    end = POSITIVE if x > 0 else NEGATIVE
    return tuple(round(a + abs(x) * (b - a)) for a, b in zip(NEUTRAL, end))


def coloured_text(tokens, values, scale):
    """A rich Text: each token on the colour of its activation; newlines shown as ⏎."""
    from rich.text import Text
    out = Text()
    for token, value in zip(tokens, values):
        r, g, b = colour_of(float(value), scale)
        ink = "white" if abs(value) > 0.6 * scale else "black"
        out.append("⏎\n" if token == "\n" else token, style=f"{ink} on rgb({r},{g},{b})")
    return out


def legend(scale, steps=9):
    """A rich Text: the colour scale from -scale to +scale."""
    from rich.text import Text
    out = Text(f"activation {-scale:+.2g} ")
    for k in range(steps):
        r, g, b = colour_of(scale * (2 * k / (steps - 1) - 1), scale)
        out.append("  ", style=f"on rgb({r},{g},{b})")
    out.append(f" {scale:+.2g}   (⏎ newline)")
    return out
