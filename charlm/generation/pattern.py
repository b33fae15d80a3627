"""A regular expression as a deterministic automaton over a model's vocabulary, for generation
that obeys a pattern (``charlm sample --match REGEX``).

The text a sample makes (its prime included) must be a full match of the pattern, as Python's
``re.fullmatch`` reads it. The automaton that decides this is a table over the vocabulary:

    table      (S, V) int32   the state after reading token v in state s; -1: no match lies that way
    accepting  (S,) bool      the text read so far is a full match
    distance   (S,) int32     the fewest characters that lead from s to an accepting state

State 0 is the start. Every state is reachable from it and reaches an accepting state (the others
are pruned: their entries in ``table`` are -1), so ``distance`` is finite everywhere. <EOS> and
<UNK> have no transitions: <EOS> ends a text, which only an accepting state allows (see
:meth:`Pattern.choices`). A step that has ``remaining`` characters left, this one included, may
draw v in state s only if ``distance[table[s, v]] <= remaining - 1``: a state from which no
accepting state can be reached in the length left is never entered, so the text always ends in
an accepting state.

How the pattern becomes an automaton. Python's own parser reads it (``re.compile``'s errors,
with their positions, are the ones reported), and its parse tree is checked for what no finite
automaton of characters can do here: backreferences, conditionals, lookaround, atomic groups,
possessive repeats, word boundaries, and anchors anywhere but the two ends (a whole text is
matched, so ``^`` at the start and ``$`` at the end change nothing). Each single-character
element of the tree (a literal, a class, ``.``, ``\\w``, under whatever flags are in force) is
compiled on its own by Python's ``re`` and tried on every character of the vocabulary, so it
means exactly what it means to ``re`` (Unicode classes, ``(?i)``, ``(?s)``): it becomes the set
of the vocabulary's characters it matches. The characters no element tells apart share one
symbol. Glushkov's construction turns the tree into positions (one per character set, repeats
written out) with the positions that may follow each, and the subset construction, run from the
start over the symbols, gives the deterministic automaton, built only as far as it is reachable.
The parse tree and the compiling of a lone element use the standard library's
``re._parser``/``re._compiler`` (``sre_parse``/``sre_compile`` before Python 3.11), whose layout
has been stable for many releases.

Why no automaton library: interegular 0.3.3 and greenery 4.2.3 were both tried. Both read
regular expressions their own way (``[]a]``, ``\\w`` beyond ASCII, ``.`` and the newline,
anchors, flags), so only Python's reading can be trusted to mean what ``re.fullmatch`` means;
and both build automata of nested repeats too slowly to use (docs/patterns.md gives the times):
interegular looks up each new state in a list, quadratic in the states of every intermediate
automaton. The construction here adds no dependency, and its result is held to ``re.fullmatch``
by the property tests.
"""
import functools
import re
from collections import deque

import numpy as np

from ..errors import UsageError
from ..text.vocab import EOS_ID, UNK_ID

try:                                   # Python 3.11 and later
    from re import _compiler as sre_compile, _parser as sre_parse
except ImportError:                    # Python 3.10
    import sre_compile
    import sre_parse

MAX_STATES = 200_000          # a larger automaton is refused rather than built slowly
SUPPORTED = "literals, classes, '.', '|', groups, '?', '*', '+' and '{m,n}'"
OPTION = "--match"


# ---- reading the pattern -------------------------------------------------------------------------

def parse(regex):
    """Python's parse tree of regex; raises UsageError, showing where, if re cannot compile it."""
    if not isinstance(regex, str):
        raise UsageError(f"{OPTION} must be a regular expression (text), not "
                         f"{type(regex).__name__}")
    try:
        re.compile(regex)
    except re.error as e:
        pos = e.pos if e.pos is not None else len(regex)
        where = f"after {regex[:pos]!r}" if pos > 0 else "at the start"
        raise UsageError(f"{OPTION} {regex!r} is not a valid regular expression: {e.msg}, at "
                         f"position {pos} ({where})") from None
    except (OverflowError, RecursionError):
        raise UsageError(f"{OPTION} {regex!r} is too large to compile") from None
    return sre_parse.parse(regex)


def unsupported(op, av):
    """The name of what node (op, av) does that the automaton cannot, or None."""
    name = str(op)
    if name == "GROUPREF":
        return "a backreference (\\1, (?P=name))"
    if name == "GROUPREF_EXISTS":
        return "a conditional group (?(id)yes|no)"
    if name in ("ASSERT", "ASSERT_NOT"):
        behind = av[0] < 0
        kind = "lookbehind" if behind else "lookahead"
        sign = ("<" if behind else "") + ("=" if name == "ASSERT" else "!")
        return f"a {kind} (?{sign}...)"
    if name == "ATOMIC_GROUP":
        return "an atomic group (?>...)"
    if name == "POSSESSIVE_REPEAT":
        return "a possessive repeat (*+, ++, ?+, {m,n}+)"
    return None


def refuse(regex, what):
    raise UsageError(f"{OPTION} {regex!r}: {what} is not supported (a pattern may use "
                     f"{SUPPORTED}; it matches the whole text)")


class Reader:
    """Reads a parse tree into a small tree of its own (``("set", chars)``, ``("cat", parts)``,
    ``("alt", options)``, ``("rep", lo, hi, part)``, hi None for no bound), each character set
    the vocabulary's characters that the element matches (see the module docstring), and notes
    the characters the pattern's literals name that the vocabulary lacks."""

    def __init__(self, regex, chars):
        self.regex = regex
        self.chars = chars                      # the vocabulary's characters, in id order
        self.missing = []
        self.cache = {}

    def atom(self, op, av, flags):
        key = (str(op), repr(av), flags)
        if key not in self.cache:
            state = sre_parse.State()
            state.flags = flags
            try:
                compiled = sre_compile.compile(sre_parse.SubPattern(state, [(op, av)]), flags)
            except (re.error, TypeError, ValueError):
                refuse(self.regex, f"an element ({str(op).lower()}) it cannot read")
            self.cache[key] = frozenset(ch for ch in self.chars if compiled.fullmatch(ch))
            if not self.cache[key] and str(op) == "LITERAL":
                self.missing.append(chr(av))
        return ("set", self.cache[key])

    def sequence(self, items, flags, start, end):
        """A SubPattern's items; start/end: whether it begins/ends the whole text, where ^ and $
        are allowed (and mean nothing more than the full match)."""
        items = list(items)
        parts = []
        for i, (op, av) in enumerate(items):
            first = start and all(str(o) == "AT" for o, _ in items[:i])
            last = end and all(str(o) == "AT" for o, _ in items[i + 1:])
            if str(op) == "AT":
                code = str(av)
                if code in ("AT_BEGINNING", "AT_BEGINNING_STRING") and first:
                    continue
                if code in ("AT_END", "AT_END_STRING") and last:
                    continue
                if code in ("AT_BOUNDARY", "AT_NON_BOUNDARY"):
                    refuse(self.regex, "a word boundary (\\b, \\B)")
                refuse(self.regex, "an anchor (^, $, \\A, \\Z) away from the ends of the pattern")
            parts.append(self.node(op, av, flags, first, last))
        return ("cat", parts)

    def node(self, op, av, flags, start, end):
        name = str(op)
        what = unsupported(op, av)
        if what:
            refuse(self.regex, what)
        if name == "SUBPATTERN":
            _, add, remove, sub = av
            return self.sequence(sub, (flags | add) & ~remove, start, end)
        if name == "BRANCH":
            return ("alt", [self.sequence(alt, flags, start, end) for alt in av[1]])
        if name in ("MAX_REPEAT", "MIN_REPEAT"):   # lazy or greedy: the same set of full matches
            lo, hi, sub = av
            return ("rep", lo, None if hi == sre_parse.MAXREPEAT else hi,
                    self.sequence(sub, flags, False, False))
        if name in ("LITERAL", "NOT_LITERAL", "ANY", "IN"):
            return self.atom(op, av, flags)
        refuse(self.regex, f"an element ({name.lower()}) it cannot read")


def symbol_groups(chars, sets):
    """The vocabulary's characters grouped by which of the sets hold them: one symbol of the
    automaton's alphabet per group (characters that no element tells apart share a column)."""
    signature = {}
    for ch in chars:
        signature.setdefault(tuple(ch in s for s in sets), []).append(ch)
    return list(signature.values())


def sets_of(tree):
    if tree[0] == "set":
        yield tree[1]
    elif tree[0] == "rep":
        yield from sets_of(tree[3])
    else:
        for part in tree[1]:
            yield from sets_of(part)


def positions(tree, sets, follow):
    """Glushkov's construction on a tree of :class:`Reader`: each character set of the tree,
    repeats written out (x{m,n} as m copies of x then n - m optional ones, x{m,} as m copies then
    x*), becomes a position (sets[p], follow[p] the positions that may come after p). Returns
    (nullable, first, last): whether the tree matches the empty text, the positions that may
    begin a match and those that may end one."""
    kind = tree[0]
    if kind == "set":
        sets.append(tree[1])
        follow.append(set())
        return False, {len(sets) - 1}, {len(sets) - 1}
    if kind == "alt":
        nullable, first, last = False, set(), set()
        for part in tree[1]:
            n, f, l = positions(part, sets, follow)
            nullable, first, last = nullable or n, first | f, last | l
        return nullable, first, last
    if kind == "rep":
        _, lo, hi, part = tree
        if (lo, hi) in ((0, 1), (0, None)):
            _, first, last = positions(part, sets, follow)
            if hi is None:                      # x*: a match of x may follow one
                for p in last:
                    follow[p] |= first
            return True, first, last
        optional = [("rep", 0, None, part)] if hi is None else [("rep", 0, 1, part)] * (hi - lo)
        return positions(("cat", [part] * lo + optional), sets, follow)
    nullable, first, last = True, set(), set()
    for part in tree[1]:                          # a sequence
        n, f, l = positions(part, sets, follow)
        for p in last:
            follow[p] |= f
        if nullable:
            first = first | f
        last = last | l if n else l
        nullable = nullable and n
    return nullable, first, last


class Automaton:
    """The deterministic automaton of a tree of :class:`Reader` over groups of characters
    (``alphabet[ch]``: a character's group), by the subset construction on Glushkov's positions:
    ``map[s][g]`` the state after group g in state s (absent: no match lies that way),
    ``initial`` and ``finals``. Only the states reachable from the start are built."""

    def __init__(self, tree, groups, regex):
        sets, follow = [], []
        nullable, first, last = positions(tree, sets, follow)
        self.alphabet = {ch: g for g, group in enumerate(groups) for ch in group}
        member = [[group[0] in s for group in groups] for s in sets]    # by position, group
        START = len(sets)                          # a position before the text
        follow.append(first)
        moves = [[frozenset(q for q in follow[p] if member[q][g]) for g in range(len(groups))]
                 for p in range(len(follow))]
        self.initial = 0
        index = {frozenset([START]): 0}
        todo = [frozenset([START])]
        self.map, self.finals = {}, set()
        while todo:
            subset = todo.pop()
            k = index[subset]
            if subset & last or (START in subset and nullable):
                self.finals.add(k)
            self.map[k] = {}
            for g in range(len(groups)):
                nxt = frozenset().union(*(moves[p][g] for p in subset))
                if not nxt:
                    continue
                if nxt not in index:
                    if len(index) >= MAX_STATES:
                        raise UsageError(f"{OPTION} {regex!r} needs an automaton of more than "
                                         f"{MAX_STATES:,} states; simplify the pattern")
                    index[nxt] = len(index)
                    todo.append(nxt)
                self.map[k][g] = index[nxt]


def automaton(regex, chars):
    """(:class:`Automaton` over the vocabulary's characters, characters of literals the
    vocabulary lacks) for regex."""
    tree = parse(regex)
    reader = Reader(regex, chars)
    read = reader.sequence(tree, tree.state.flags, True, True)
    groups = symbol_groups(chars, list(dict.fromkeys(sets_of(read))))
    try:
        return Automaton(read, groups, regex), reader.missing
    except RecursionError:
        raise UsageError(f"{OPTION} {regex!r} is nested too deeply") from None


# ---- the automaton over the vocabulary -----------------------------------------------------------

class Pattern:
    """A regular expression compiled against a vocabulary: ``table``, ``accepting`` and
    ``distance`` as the module docstring describes, state 0 the start."""

    def __init__(self, regex, vocab):
        self.regex = regex
        self.vocab = vocab
        self.table, self.accepting, self.distance, self.missing = tables(regex,
                                                                         tuple(vocab.tokens))
        self.start, self.prime, self.eos_ends = 0, "", True     # set by for_model

    @property
    def num_states(self):
        return len(self.accepting)

    def walk(self, text, state=0):
        """(state after reading text from ``state``, index of the first character that leaves the
        pattern or None); the state is -1 when the text leaves it."""
        for i, v in enumerate(self.vocab.encode(text)):
            if state < 0:
                return -1, i - 1
            state = int(self.table[state, v])
            if state < 0:
                return -1, i
        return state, None

    def matches(self, text):
        """Whether text is a full match (of the characters the vocabulary has)."""
        state, _ = self.walk(text)
        return state >= 0 and bool(self.accepting[state])

    def choices(self, state, remaining, eos_ends=True):
        """(V,) bool: the tokens that may come next in ``state`` with ``remaining`` characters
        left, this one included, so that the text can still end in an accepting state. <EOS>
        ends the text: allowed in an accepting state, and with ``eos_ends`` False (a stream,
        whose model has no end of text) only where no character may follow."""
        nxt = self.table[state]
        ok = nxt >= 0
        ok[ok] = self.distance[nxt[ok]] <= remaining - 1
        if self.accepting[state] and (eos_ends or not ok.any()):
            ok[EOS_ID] = True
        return ok

    def matches_up_to(self, length, limit, state=0, prefix=""):
        """Every full match of at most ``length`` characters from ``state`` (prefix + each
        continuation), in depth-first order; raises UsageError when there are more than limit."""
        found = []
        stack = [(state, "")]
        while stack:
            s, text = stack.pop()
            if self.accepting[s]:
                found.append(prefix + text)
                if len(found) > limit:
                    raise UsageError(f"{OPTION} {self.regex!r} has more than {limit:,} matches of "
                                     f"at most {length} characters: too many to enumerate")
            if len(text) >= length:
                continue
            nxt = self.table[s]
            for v in range(len(nxt) - 1, 1, -1):
                t = int(nxt[v])
                if t >= 0 and self.distance[t] <= length - len(text) - 1:
                    stack.append((t, text + self.vocab.tokens[v]))
        return found


@functools.lru_cache(maxsize=32)
def tables(regex, tokens):
    """(table, accepting, distance, characters the vocabulary lacks) of regex over the vocabulary
    ``tokens`` (see the module docstring); kept for the patterns used last, which a request
    checks and then runs, and ``--novel`` runs batch after batch (so never written to)."""
    V = len(tokens)
    chars = list(tokens[2:])
    fsm, missing = automaton(regex, chars)
    symbols = [fsm.alphabet[ch] for ch in chars]
    # The states reachable from the start through the vocabulary's characters.
    order = {fsm.initial: 0}
    edges = []                              # (from, token id, to) by index in order
    queue = deque([fsm.initial])
    while queue:
        s = queue.popleft()
        moves = fsm.map.get(s, {})
        for v, sym in enumerate(symbols, start=2):
            t = moves.get(sym)
            if t is None:
                continue
            if t not in order:      # at most the states of the capped construction
                order[t] = len(order)
                queue.append(t)
            edges.append((order[s], v, order[t]))
    n = len(order)
    accepting = np.zeros(n, np.bool_)
    for s, k in order.items():
        accepting[k] = s in fsm.finals
    distance = distances(n, edges, accepting)
    if distance[0] < 0:
        raise UsageError(no_match_message(regex, missing))
    # Keep the states that can still reach acceptance, the start first.
    live = np.flatnonzero(distance >= 0)
    renumber = np.full(n, -1, np.int64)
    renumber[live] = np.arange(len(live))
    table = np.full((len(live), V), -1, np.int32)
    for s, v, t in edges:
        if renumber[s] >= 0 and renumber[t] >= 0:
            table[renumber[s], v] = renumber[t]
    table[:, [EOS_ID, UNK_ID]] = -1
    return minimal(table, accepting[live], distance[live].astype(np.int32)) + (missing,)


def minimal(table, accepting, distance):
    """The minimal automaton of (table, accepting, distance), by Moore's partition refinement:
    states start apart by acceptance and by the lengths of their shortest and longest matches,
    and are split while two of a block go, on some token, to different blocks (or one nowhere);
    the blocks are the states of the result, numbered in the order of their first state, so the
    start stays 0. The subset construction's automaton recognises the same texts but can have
    many more states.

    Two states that accept the same texts have the same shortest and longest one, so starting
    apart by them never separates such states; it spares a round per state along a chain
    (``a{3000}``, ``.{0,2000}``), where acceptance alone splits one state off the chain a round."""
    signature = np.column_stack([accepting, distance, longest_paths(table, accepting)])
    _, block = np.unique(signature, axis=0, return_inverse=True)
    block = block.reshape(-1)
    count = block.max() + 1
    while True:
        nxt = np.where(table >= 0, block[np.maximum(table, 0)], -1)
        _, block = np.unique(np.column_stack([block, nxt]), axis=0, return_inverse=True)
        block = block.reshape(-1)
        if block.max() + 1 == count:
            break
        count = block.max() + 1
    first = np.full(count, len(block), np.int64)
    np.minimum.at(first, block, np.arange(len(block)))
    order = np.argsort(first, kind="stable")               # blocks by their first state
    rank = np.empty(count, np.int64)
    rank[order] = np.arange(count)
    reps = first[order]
    small = np.where(table[reps] >= 0, rank[block[np.maximum(table[reps], 0)]], -1)
    return small.astype(np.int32), accepting[reps], distance[reps]


def longest_paths(table, accepting):
    """(n,) int64: the most transitions from each state of ``table`` (every state reaching an
    accepting one) to an accepting one, or -1 where a path can go round a loop (no most). States
    are settled from the end (Kahn's order on the graph's edges): a state is settled once every
    state it moves to is; the states never settled are those that reach a loop."""
    n = len(table)
    s, v = np.nonzero(table >= 0)
    pairs = np.unique(np.column_stack([s, table[s, v]]), axis=0)     # one edge per (from, to)
    waiting = np.bincount(pairs[:, 0], minlength=n)                  # successors not settled
    by_target = pairs[np.argsort(pairs[:, 1], kind="stable")]
    starts = np.searchsorted(by_target[:, 1], np.arange(n + 1))
    most = np.where(accepting, 0, -1).astype(np.int64)
    settled = np.zeros(n, np.bool_)
    queue = deque(np.flatnonzero(waiting == 0).tolist())
    while queue:
        t = queue.popleft()
        settled[t] = True
        for s in by_target[starts[t]:starts[t + 1], 0].tolist():
            most[s] = max(most[s], most[t] + 1)
            waiting[s] -= 1
            if waiting[s] == 0:
                queue.append(s)
    most[~settled] = -1
    return most


def distances(n, edges, accepting):
    """(n,) int64: the fewest transitions from each state to an accepting one (-1 if none), by
    breadth-first search backwards from the accepting states."""
    back = [[] for _ in range(n)]
    for s, _, t in edges:
        back[t].append(s)
    dist = np.full(n, -1, np.int64)
    queue = deque(np.flatnonzero(accepting).tolist())
    dist[list(queue)] = 0
    while queue:
        t = queue.popleft()
        for s in back[t]:
            if dist[s] < 0:
                dist[s] = dist[t] + 1
                queue.append(s)
    return dist


def no_match_message(regex, missing):
    if missing:
        shown = ", ".join(repr(ch) for ch in dict.fromkeys(missing))
        return (f"{OPTION} {regex!r} cannot match any text the model can write: it needs {shown}, "
                "which the model's vocabulary lacks")
    return f"{OPTION} {regex!r} matches no text made of the model's characters"


# ---- a pattern for a model and its sampling options ----------------------------------------------

def for_model(model, regex, length, prime="", stop_at_eos=None):
    """The Pattern of regex for ``model``, ready for sampling ``length`` characters after
    ``prime``: its ``start`` is the state after the prime, and ``eos_ends`` whether <EOS> ends a
    text wherever the pattern is matched (lines mode) or only where no character may follow
    (stream mode). Refuses, in one line (UsageError): a bidirectional or word model, a pattern
    the model's characters cannot match, a prime that leaves the pattern, a pattern that cannot
    be matched within ``length`` characters after the prime, and --no-stop-at-eos (``stop_at_eos``
    False: a match ends at <EOS>, the end of a line in lines mode)."""
    from ..text.vocab import drawable
    if model.config.bidirectional:
        raise UsageError(f"{OPTION} needs a left-to-right model: {model.path or 'this model'} is "
                         "bidirectional and cannot generate text")
    if getattr(model.vocab, "kind", "chars") != "chars":
        raise UsageError(f"{OPTION} matches characters: {model.path or 'this model'} is a word "
                         "model")
    lines = model.config.mode == "lines"
    if stop_at_eos is False:
        raise UsageError(f"--no-stop-at-eos does not apply to {OPTION}: " + (
            "in lines mode a match ends at the end of its line" if lines else
            "a text ends where its match may end, at <EOS>"))
    pattern = Pattern(regex, model.vocab)
    state, bad = pattern.walk(prime)
    if state < 0:
        raise UsageError(f"--prime {prime!r} cannot begin a match of {OPTION} {regex!r}: the "
                         f"text leaves the pattern at {prime[bad]!r} (position {bad})")
    need = int(pattern.distance[state])
    if need > length:
        raise UsageError(f"{OPTION} {regex!r} cannot match within --length {length}: the "
                         f"shortest match{' after the prime' if prime else ''} needs {need} "
                         "more characters")
    if not prime and length > 0:
        first = pattern.choices(0, length, lines) & drawable(model.vocab, model.config.mode)[0]
        if not first.any():
            raise UsageError(f"{OPTION} {regex!r} matches only the empty text, and a sample "
                             "without a prime has at least one character")
    pattern.start, pattern.prime, pattern.eos_ends = state, prime, lines
    return pattern


_NONE = (np.zeros((0, 0), np.int32), np.zeros(0, np.int32), np.zeros(0, np.bool_))


def kernel_match(pattern, states, left):
    """The ``match`` argument of :func:`charlm.kernels.draw.generate`: the pattern's tables (empty
    for None), the samples' states (B,) int32, the draws left and ``eos_ends``."""
    tables = _NONE if pattern is None else (pattern.table, pattern.distance, pattern.accepting)
    return (*tables, states, np.int64(left), pattern is not None and bool(pattern.eos_ends))


class MatchingStops:
    """Stop strings for a sample that must match a pattern: the sample ends at the first
    occurrence of a stop string (in the order of :func:`charlm.generation.stops.first_stop`)
    after which the text kept (the prime, the text before the stop string, and the stop string
    itself with ``keep_stop``) is a full match; other occurrences are passed over. The text is
    held back until the sample ends, since a later character can decide whether an occurrence
    counts. The interface of :class:`charlm.generation.stops.StopScanner`."""

    def __init__(self, pattern, stops, keep_stop):
        self.pattern, self.stops, self.keep_stop = pattern, stops, keep_stop
        self.text = ""
        self.stopped = False

    def feed(self, text):
        """Take the next generated text; returns the text given out (all of it once stopped)."""
        if self.stopped:
            return ""
        scanned = max(0, len(self.text) - max(map(len, self.stops)) + 1)
        self.text += text
        ends = sorted({(start + len(s), -len(s), start) for s in self.stops
                       for start in occurrences(self.text, s, scanned)})
        for end, _, start in ends:
            kept = self.text[:end] if self.keep_stop else self.text[:start]
            if self.pattern.matches(self.pattern.prime + kept):
                self.stopped = True
                self.text = ""
                return kept
        return ""

    def finish(self):
        """The text held back, when the sample has ended without a stop string."""
        text, self.text = ("", "") if self.stopped else (self.text, "")
        return text


def occurrences(text, s, start):
    """The start of every occurrence of s in text that begins at or after start."""
    found = []
    k = text.find(s, start)
    while k >= 0:
        found.append(k)
        k = text.find(s, k + 1)
    return found


# ---- drawing from the exact conditional ----------------------------------------------------------

EXACT_LIMIT = 10_000          # the most matches --exact scores


def exact_distribution(model, options, limit=EXACT_LIMIT):
    """(texts after the prime, their probabilities): every full match of ``options.match`` of at
    most ``options.length`` characters after the prime, each with P(text | prime, text matches)
    = P(prime text <EOS>) / the sum over the matches (lines mode: each is a whole line, scored
    as ``charlm score`` scores it). Raises UsageError when there are more than ``limit``."""
    from ..network.engine import softmax
    from ..scoring.scorer import score
    pattern = options.match
    found = pattern.matches_up_to(options.length, limit, state=pattern.start)
    texts = [t for t in found if t or options.prime]       # no prime: a line has a character
    if not texts:
        raise UsageError(f"{OPTION} {pattern.regex!r} has no match to draw")
    log_p = np.array([s.log_prob for s in score(model, [options.prime + t for t in texts])])
    return texts, softmax(log_p)


def sample_exact(model, options, limit=EXACT_LIMIT):
    """``options.num`` texts drawn from the exact conditional of :func:`exact_distribution`
    (``options`` checked for exact draws: :meth:`SamplingOptions.checked` with ``exact``)."""
    texts, p = exact_distribution(model, options, limit)
    picks = np.random.default_rng(options.seed).choice(len(texts), size=options.num, p=p)
    return [texts[k] for k in picks]
