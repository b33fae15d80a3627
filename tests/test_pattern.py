"""Generation that obeys a pattern (``--match``): the automaton of charlm.generation.pattern held
to Python's ``re.fullmatch`` on every short text over a small alphabet, its distance table held to
brute force, and its refusals."""
import itertools
import re
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from charlm.errors import UsageError
from charlm.generation.pattern import Pattern, for_model
from charlm.text.vocab import EOS_ID, Vocab

ALPHABET = "abc"
VOCAB = Vocab.from_text(ALPHABET + "d", mode="lines")      # 'd': what negated classes and . add
LONGEST = 5
TEXTS = ["".join(t) for n in range(LONGEST + 1) for t in itertools.product("abcd", repeat=n)]


# ---- generated patterns -----------------------------------------------------------------------

def _atoms():
    letters = st.sampled_from(list(ALPHABET))
    return st.one_of(
        letters,
        st.just("."),
        st.lists(letters, min_size=1, max_size=3, unique=True).map(lambda c: "[" + "".join(c) + "]"),
        st.lists(letters, min_size=1, max_size=2, unique=True).map(lambda c: "[^" + "".join(c) + "]"),
        st.just("[a-c]"),
    )


def _quantified(inner, unbounded):
    """inner with a quantifier. Unbounded ones go on single characters only: Python's
    backtracking takes exponential time on nested unbounded repeats, and re is the reference."""
    def wrap(args):
        body, q = args
        if not q or len(body) == 1 or re.fullmatch(r"\[[^]]*\]", body):
            return body + q
        return "(?:" + body + ")" + q
    bounded = ["", "", "?", "{2}", "{0,2}", "{1,3}", "??"]
    quants = st.sampled_from(bounded + (["*", "+", "{2,}", "*?"] if unbounded else []))
    return st.tuples(inner, quants).map(wrap)


def _patterns():
    def extend(inner):
        seq = st.lists(_quantified(inner, False), min_size=1, max_size=3).map("".join)
        alt = st.lists(seq, min_size=2, max_size=3).map(lambda xs: "(" + "|".join(xs) + ")")
        group = seq.map(lambda s: "(?:" + s + ")")
        return st.one_of(seq, alt, group)
    base = st.recursive(_quantified(_atoms(), True), extend, max_leaves=5)
    return st.lists(_quantified(base, False), min_size=1, max_size=3).map("".join)


def compiled(regex):
    """The Pattern, or None when no text over the vocabulary matches (refused as UsageError)."""
    try:
        return Pattern(regex, VOCAB)
    except UsageError:
        return None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_patterns())
def test_accepts_exactly_the_full_matches_of_re(regex):
    pattern = compiled(regex)
    expected = {t for t in TEXTS if re.fullmatch(regex, t)}
    if pattern is None:
        # Refused only when nothing over the vocabulary matches at all; the short texts show none.
        assert not expected
        return
    assert {t for t in TEXTS if pattern.matches(t)} == expected


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_patterns())
def test_distance_is_the_shortest_completion(regex):
    pattern = compiled(regex)
    if pattern is None:
        return
    # For every short prefix still inside the pattern: the fewest characters that complete it
    # to a full match (by brute force over re) is the distance of the state it reaches.
    for u in TEXTS[:1 + 4 + 16 + 64]:                # prefixes of at most 3 characters
        state, _ = pattern.walk(u)
        completions = [len(w) for w in TEXTS[:1 + 4 + 16] if re.fullmatch(regex, u + w)]
        if state < 0:
            assert not completions
            continue
        if completions:
            assert pattern.distance[state] == min(completions)
        else:
            assert pattern.distance[state] > 2
        assert pattern.accepting[state] == bool(re.fullmatch(regex, u))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_patterns(), st.integers(1, 4))
def test_choices_keep_a_match_within_the_length_left(regex, remaining):
    pattern = compiled(regex)
    if pattern is None:
        return
    state, _ = pattern.walk("")
    ok = pattern.choices(state, remaining)
    for v in range(2, len(VOCAB)):
        ch = VOCAB.tokens[v]
        reachable = any(re.fullmatch(regex, ch + w) for w in TEXTS if len(w) <= remaining - 1)
        assert ok[v] == reachable, (ch, remaining)
    assert ok[EOS_ID] == bool(re.fullmatch(regex, ""))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_patterns(), st.integers(0, 4))
def test_enumerated_matches_are_every_match(regex, length):
    pattern = compiled(regex)
    if pattern is None:
        return
    found = pattern.matches_up_to(length, limit=10_000)
    assert len(found) == len(set(found))
    assert set(found) == {t for t in TEXTS if len(t) <= length and re.fullmatch(regex, t)}


def test_shortest_is_a_shortest_match():
    pattern = Pattern("K[a-c]{2,4}a|bb", VOCAB.__class__.from_text("Kabc"))
    assert pattern.shortest() == "bb"
    assert pattern.distance[0] == 2


# ---- what Python's re means, not what the automaton library reads -------------------------------

@pytest.mark.parametrize("regex, yes, no", [
    ("[]a]b", ["]b", "ab"], ["b", "[]a]b"]),                # ']' first in a class is a member
    (r"\w+", ["é1_", "Zük"], ["a b", "-"]),              # Unicode word characters
    (r"(?i)k[a-c]", ["Kb", "kc"], ["kd", "zb"]),
    (r"(?x) a b # a comment", ["ab"], ["a b"]),
    (r"^ab$", ["ab"], ["ab\n"]),
    (r"\Aab|c\Z", ["ab", "c"], ["abc"]),
    (".", ["a"], ["\n"]),
    ("(?s).", ["\n"], []),
    (r"a{,2}", ["", "aa"], ["aaa"]),
    (r"[\d-]", ["1", "-"], ["a"]),
])
def test_python_semantics(regex, yes, no):
    vocab = Vocab.from_text("abcdzZKkéü1_ -\n[]#", mode="stream")
    pattern = Pattern(regex, vocab)
    for text in yes:
        assert pattern.matches(text) and re.fullmatch(regex, text), text
    for text in no:
        assert not pattern.matches(text) and not re.fullmatch(regex, text), text


# ---- refusals, one line each ---------------------------------------------------------------------

@pytest.mark.parametrize("regex, words", [
    ("ab(c", ["not a valid regular expression", "position 2", "after 'ab'"]),
    ("a{2,1}", ["not a valid regular expression", "position"]),
    ("(a)\\1", ["backreference"]),
    ("(?P<x>a)(?P=x)", ["backreference"]),
    ("(?=a)a", ["lookahead"]),
    ("(?<!b)a", ["lookbehind"]),
    ("a\\b", ["word boundary"]),
    ("a^b", ["anchor"]),
    ("(?>a)", ["atomic group"]),
    ("a++", ["possessive"]),
    ("ab|Kåre", None),                                      # one alternative is enough
    ("Kåre", ["'å'", "vocabulary lacks"]),
    ("[^\\s\\S]", ["matches no text"]),
])
def test_refusals(regex, words):
    vocab = Vocab.from_text("abcKre", mode="lines")
    if words is None:
        assert Pattern(regex, vocab).matches("ab")
        return
    with pytest.raises(UsageError) as e:
        Pattern(regex, vocab)
    message = str(e.value)
    assert "\n" not in message and message.startswith("--match")
    for word in words:
        assert word in message


def _model(text="abcK", mode="lines", bidirectional=False):
    config = SimpleNamespace(bidirectional=bidirectional, mode=mode)
    return SimpleNamespace(config=config, vocab=Vocab.from_text(text, mode=mode), path="m.npz")


def test_for_model_refuses_what_cannot_be_generated():
    with pytest.raises(UsageError, match="bidirectional"):
        for_model(_model(bidirectional=True), "a+", 10)
    with pytest.raises(UsageError, match="within --length 3.*needs 5"):
        for_model(_model(), "a{5}", 3)
    with pytest.raises(UsageError, match="--prime 'Kb' cannot begin.*'b' \\(position 1\\)"):
        for_model(_model(), "Ka+", 10, prime="Kb")
    with pytest.raises(UsageError, match="only the empty text"):
        for_model(_model(), "(a{0})", 10)
    with pytest.raises(UsageError, match="--no-stop-at-eos"):
        for_model(_model(), "a+", 10, stop_at_eos=False)
    pattern = for_model(_model(), "Ka{2,3}", 10, prime="Ka")
    state, _ = pattern.walk("Ka")
    assert pattern.distance[state] == 1
