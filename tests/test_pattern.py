"""Generation that obeys a pattern (``--match``): the automaton of charlm.generation.pattern held
to Python's ``re.fullmatch`` on every short text over a small alphabet, its distance table held to
brute force, and its refusals."""
import itertools
import json
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
        st.lists(letters, min_size=1, max_size=3, unique=True).map(lambda c: f"[{''.join(c)}]"),
        st.lists(letters, min_size=1, max_size=2, unique=True).map(lambda c: f"[^{''.join(c)}]"),
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


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(_patterns())
def test_accepts_exactly_the_full_matches_of_re(regex):
    pattern = compiled(regex)
    expected = {t for t in TEXTS if re.fullmatch(regex, t)}
    if pattern is None:
        # Refused only when nothing over the vocabulary matches at all; the short texts show none.
        assert not expected
        return
    assert {t for t in TEXTS if pattern.matches(t)} == expected


@settings(max_examples=100, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
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


def moore_from_acceptance(table, accepting):
    """The number of states of the minimal automaton by Moore's refinement from acceptance
    alone: the textbook start, against which the faster start is held."""
    block = accepting.astype(np.int64)
    while True:
        nxt = np.where(table >= 0, block[np.maximum(table, 0)], -1)
        _, refined = np.unique(np.column_stack([block, nxt]), axis=0, return_inverse=True)
        if refined.max() + 1 == len(np.unique(block)):
            return len(np.unique(block))
        block = refined.reshape(-1)


@settings(max_examples=100, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(_patterns())
def test_the_automaton_is_minimal(regex):
    """Starting the refinement apart by shortest and longest matches merges no fewer and no
    more states than starting from acceptance alone."""
    pattern = compiled(regex)
    if pattern is None:
        return
    assert pattern.num_states == moore_from_acceptance(pattern.table, pattern.accepting)


def test_longest_paths_are_the_longest_completions():
    from charlm.generation.pattern import longest_paths
    pattern = Pattern("ab{0,3}|c+", VOCAB)
    most = longest_paths(pattern.table, pattern.accepting)
    assert most[0] == -1                                     # c+ loops
    after_a, _ = pattern.walk("a")
    assert most[after_a] == 3 and most[pattern.walk("abb")[0]] == 1
    assert most[pattern.walk("c")[0]] == -1


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
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


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(_patterns(), st.integers(0, 4))
def test_enumerated_matches_are_every_match(regex, length):
    pattern = compiled(regex)
    if pattern is None:
        return
    found = pattern.matches_up_to(length, limit=10_000)
    assert len(found) == len(set(found))
    assert set(found) == {t for t in TEXTS if len(t) <= length and re.fullmatch(regex, t)}


def test_distance_counts_the_characters_of_a_shortest_match():
    pattern = Pattern("K[a-c]{2,4}a|bb", VOCAB.__class__.from_text("Kabc"))
    assert pattern.distance[0] == 2                         # "bb"
    assert pattern.distance[pattern.table[0][pattern.vocab.tokens.index("K")]] == 3   # "aaa"


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
    for mode in ("lines", "stream"):
        with pytest.raises(UsageError, match="--no-stop-at-eos does not apply"):
            for_model(_model(mode=mode), "a+", 10, stop_at_eos=False)
    assert for_model(_model(mode="stream"), "a+", 10).eos_ends is False     # not asked: fine
    pattern = for_model(_model(), "Ka{2,3}", 10, prime="Ka")
    state, _ = pattern.walk("Ka")
    assert pattern.distance[state] == 1


# ---- through the installed charlm command --------------------------------------------------------

from charlm.scoring.scorer import score  # noqa: E402

from conftest import run_charlm  # noqa: E402
from tiny_models import make_model, save_model  # noqa: E402


def _lines_model(tmp_path, seed=0):
    model = make_model("lstm", hidden=8, mode="lines", chars="abcd", seed=seed)
    return model, save_model(model, tmp_path / "lines.npz")


def _samples(*args):
    result = run_charlm("sample", *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["samples"]


@settings(max_examples=6, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(_patterns(), st.integers(0, 2**31))
def test_every_sample_matches(tmp_path_factory, regex, seed):
    model = make_model("gru", hidden=8, mode="lines", chars="abcd", seed=seed % 7)
    path = save_model(model, tmp_path_factory.mktemp("m") / "m.npz")
    pattern = compiled(regex)
    if pattern is None or pattern.distance[0] > 12:
        return
    args = ["--model", path, "--match", regex, "--length", 12, "--num", 16, "--seed", seed]
    if pattern.matches_up_to(0, 1) and not any(pattern.choices(0, 12)[2:]):
        result = run_charlm("sample", *args)           # only the empty line: refused
        assert result.returncode == 2 and "empty" in result.stderr
        return
    texts = _samples(*args)
    assert len(texts) == 16
    for text in texts:
        assert re.fullmatch(regex, text) and len(text) <= 12, (regex, text)


def test_a_pattern_with_one_match_gives_that_string(tmp_path):
    _, path = _lines_model(tmp_path)
    assert _samples("--model", path, "--match", "bad(c)", "--num", 5) == ["badc"] * 5
    assert _samples("--model", path, "--match", "ba[d]c", "--beam", 3) == ["badc"]
    assert _samples("--model", path, "--match", "b(ad|ad)c", "--exact", "--num", 3) == ["badc"] * 3
    stream = save_model(make_model("lstm", hidden=8, chars="abcd "), tmp_path / "s.npz")
    assert _samples("--model", stream, "--match", "dab", "--num", 2) == ["dab", "dab"]


def test_the_prime_is_part_of_the_match(tmp_path):
    _, path = _lines_model(tmp_path)
    for text in _samples("--model", path, "--match", "ab[cd]{2,4}", "--prime", "ab", "--num", 8):
        assert re.fullmatch("[cd]{2,4}", text)
    result = run_charlm("sample", "--model", path, "--match", "ab[cd]+", "--prime", "ba")
    assert result.returncode == 2 and "cannot begin a match" in result.stderr


def test_beam_s_first_result_is_the_most_probable_match(tmp_path):
    model, path = _lines_model(tmp_path, seed=3)
    regex = "[ab][cd]{1,2}"
    matches = Pattern(regex, model.vocab).matches_up_to(3, 100)
    best = max(matches, key=lambda t: score(model, t).log_prob)
    # a beam as wide as the matches of each length keeps them all: the search is exhaustive
    found = _samples("--model", path, "--match", regex, "--beam", len(matches))
    assert found[0] == best and sorted(found) == sorted(matches)


def test_options_of_drawing_apply_after_the_mask(tmp_path):
    _, path = _lines_model(tmp_path)
    for text in _samples("--model", path, "--match", "[abc]{3}d", "--top-k", 1, "--num", 4,
                         "--seed", 1):
        assert re.fullmatch("[abc]{3}d", text)
    greedy = _samples("--model", path, "--match", "[abc]{3}d", "--temperature", 0, "--num", 3)
    assert len(set(greedy)) == 1 and re.fullmatch("[abc]{3}d", greedy[0])
    for text in _samples("--model", path, "--match", "[ab]+c[ab]+", "--top-p", 0.5, "--num", 6,
                         "--length", 8, "--seed", 2):
        assert re.fullmatch("[ab]+c[ab]+", text) and len(text) <= 8


def test_stop_strings_end_a_sample_only_where_it_matches(tmp_path):
    stream = save_model(make_model("lstm", hidden=8, chars="abcd "), tmp_path / "s.npz")
    texts = _samples("--model", stream, "--match", "[abcd ]*d", "--stop", " ", "--num", 10,
                     "--length", 30, "--seed", 5)
    for text in texts:
        # cut at the first space after which the text matches, or running to its end
        assert re.fullmatch("[abcd ]*d", text)
        head = text.split(" ")
        assert all(not re.fullmatch("[abcd ]*d", " ".join(head[:k])) for k in range(1, len(head)))


def test_novel_samples_match(tmp_path):
    _, path = _lines_model(tmp_path)
    corpus = tmp_path / "c.txt"
    corpus.write_text("abd\nbbd\n")
    texts = _samples("--model", path, "--match", "[ab]{2}d", "--novel", "--num", 2,
                     "--corpus", corpus, "--seed", 4)
    assert len(texts) == 2 and all(re.fullmatch("[ab]{2}d", t) for t in texts)
    assert not {"abd", "bbd"} & set(texts) and len(set(texts)) == 2


def test_the_api_matches_too():
    model = make_model("rnn", hidden=8, mode="lines", chars="abcd")
    texts = model.sample(num=30, match="(ab|cd)+", length=9, seed=3)
    assert all(re.fullmatch("(ab|cd)+", t) for t in texts)
    assert [r.text for r in model.beam_search(match="c?d", beam=4)] == sorted(
        ["d", "cd"], key=lambda t: -score(model, t).log_prob)


@pytest.mark.parametrize("args, words", [
    (["--match", "ab(c"], ["not a valid regular expression", "position 2"]),
    (["--match", "(a)\\1"], ["backreference"]),
    (["--match", "(?<=a)b"], ["lookbehind"]),
    (["--match", "abe"], ["'e'", "vocabulary lacks"]),
    (["--match", "a{20}", "--length", 10], ["within --length 10"]),
    (["--exact"], ["--exact draws from the matches of --match"]),
    (["--match", "ab", "--exact", "--beam", 2], ["--beam does not apply to --exact"]),
    (["--match", "ab", "--exact", "--top-k", 2], ["--top-k does not apply to --exact"]),
    (["--match", "ab", "--exact", "--novel"], ["--novel does not apply to --exact"]),
])
def test_bad_patterns_are_one_line_and_exit_2(tmp_path, args, words):
    _, path = _lines_model(tmp_path)
    result = run_charlm("sample", "--model", path, *args)
    assert result.returncode == 2 and result.stdout == ""
    line = result.stderr.strip()
    assert "\n" not in line
    for word in words:
        assert word in line


def test_the_chooser_offers_only_allowed_characters(tmp_path):
    from test_interactive import Terminal, choices, require_tmux, text_panel
    require_tmux()
    model = make_model("lstm", hidden=16, mode="lines", chars="abcdefghij")
    path = save_model(model, tmp_path / "m.npz")
    term = Terminal(tmp_path)
    try:
        term.run_interactive(path, "--match", "'[ab]c[de]'", "--seed", "3")
        screen = term.wait_for(r"Next character[\s\S]*\n\s+2\s")
        assert set(choices(screen).values()) == {"a", "b"}
        assert "--match [ab]c[de]" in screen and "3 more characters" in screen
        term.send("1")
        screen = term.wait_for(r"picked")
        assert set(choices(screen).values()) == {"c"}
        term.send("d")
        screen = term.wait_for(r"drew 1 character\b")
        assert set(choices(screen).values()) <= {"d", "e"}
        term.send("d")
        screen = term.wait_for(r"a full match")
        assert re.fullmatch("[ab]c[de]", text_panel(screen).replace("▌", "").strip())
        term.send("q")
        screen = term.wait_for(r"(?m)^EXIT=\d+")
        lines = screen.splitlines()
        assert re.fullmatch("[ab]c[de]", lines[lines.index("EXIT=0") - 1])
    finally:
        term.close()


def test_two_workers_draw_what_one_does_under_a_pattern():
    from charlm.generation.options import SamplingOptions
    from charlm.generation.sampler import Generation
    from charlm.text.vocab import drawable
    model = make_model("gru", hidden=128, mode="lines", chars="abcdefgh")
    options = SamplingOptions.checked(model, match="[a-d]{3}(e|fg)h?", length=12)
    allowed = drawable(model.vocab, "lines")
    uniforms = np.random.default_rng(5).random((12, 1))
    runs = []
    for workers in (1, 2):
        run = Generation(model.network, 1, workers=workers)
        none = np.zeros(0, np.int64)
        runs.append(np.concatenate([run.step(none, uniforms[:5], options, allowed),
                                    run.step(none, uniforms[5:], options, allowed)]))
    assert np.array_equal(runs[0], runs[1])
    text = model.vocab.decode(runs[0][:, 0][runs[0][:, 0] > 0])
    assert re.fullmatch("[a-d]{3}(e|fg)h?", text)
