"""Generation that obeys a pattern (``--match``) against its alternatives, on the names model.

    charlm train --weight-drop 0                    # the bundled names model, charlm.npz
    python benchmarks/bench_match.py [--model charlm.npz] [--num 1000] [--pattern REGEX ...]
    python benchmarks/bench_match.py --compare "K[aeiou][a-z]a" [--samples 20000]

For each pattern, three ways to get ``--num`` names that match it:

- constrained: ``model.sample(num=N, match=REGEX)``, one batch;
- unconstrained: ``model.sample(num=N)``, the speed that constraining is held to (the goal is at
  least half of it), whatever the names match;
- draw and filter: batches of N unconstrained names until N of them match (``re.fullmatch``), or
  ``--max-draws`` names have been drawn.

The table gives each one's characters per second (the characters of the names it returns over the
wall-clock time, the first call's compile excluded by a warm-up), the share of names that match,
the share that are new (not lines of the training corpus), and for filtering the names drawn.

``--compare`` measures what the mask does to the distribution (docs/patterns.md): for a pattern
with few matches, the exact conditional P(name | it matches) of every match (each scored, as
``--exact`` does) beside the share of ``--samples`` masked samples that gave it, and the total
variation distance between the two.
"""
import argparse
import re
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import charlm  # noqa: E402
import charlm.errors  # noqa: E402
from charlm.generation.options import SamplingOptions  # noqa: E402
from charlm.generation.pattern import exact_distribution  # noqa: E402

PATTERNS = ("K[a-z]{4,7}a", "[A-Z][a-z]*(ton|ville)", "Zy[a-z]*x")


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def new_share(model, texts):
    try:
        checks = model.novelty(texts)
    except charlm.errors.CharlmError:          # no training corpus recorded or found
        return float("nan")
    return sum(not c.in_corpus for c in checks) / max(1, len(texts))


def run_pattern(model, regex, num, seed, max_draws):
    """The three rows of one pattern: (way, chars/s, matching, new, names drawn)."""
    rows = []
    texts, seconds = timed(lambda: model.sample(num=num, match=regex, seed=seed))
    rows.append(("constrained", sum(map(len, texts)) / seconds,
                 np.mean([bool(re.fullmatch(regex, t)) for t in texts]), new_share(model, texts),
                 num))
    free, seconds = timed(lambda: model.sample(num=num, seed=seed))
    rows.append(("unconstrained", sum(map(len, free)) / seconds,
                 np.mean([bool(re.fullmatch(regex, t)) for t in free]), new_share(model, free),
                 num))
    kept, drawn, batch_seed = [], 0, seed
    start = time.perf_counter()
    while len(kept) < num and drawn < max_draws:
        batch = model.sample(num=num, seed=batch_seed)
        batch_seed += 1
        drawn += num
        kept += [t for t in batch if re.fullmatch(regex, t)]
    seconds = time.perf_counter() - start
    kept = kept[:num]
    rows.append(("draw and filter", sum(map(len, kept)) / seconds,
                 len(kept) / num, new_share(model, kept) if kept else float("nan"), drawn))
    return rows


def compare(model, regex, samples, seed):
    """The exact conditional of each match beside the masked samples' shares."""
    options = SamplingOptions.checked(model, num=samples, match=regex)
    texts, exact = exact_distribution(model, options)
    drawn = Counter(model.sample(num=samples, match=regex, seed=seed))
    print(f"{regex}: {len(texts)} matches, {samples:,} masked samples")
    print(f"{'match':<16} {'exact':>8} {'masked':>8}")
    order = np.argsort(-exact)
    for k in order[:20]:
        print(f"{texts[k]:<16} {exact[k]:8.4f} {drawn[texts[k]] / samples:8.4f}")
    masked = np.array([drawn[t] / samples for t in texts])
    print(f"total variation distance: {0.5 * np.abs(masked - exact).sum():.4f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="charlm.npz")
    parser.add_argument("--num", type=int, default=1000)
    parser.add_argument("--pattern", action="append", default=None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-draws", type=int, default=200_000)
    parser.add_argument("--compare", metavar="REGEX", default=None)
    parser.add_argument("--samples", type=int, default=20_000)
    args = parser.parse_args()
    model = charlm.load(args.model)
    for num in {args.num, args.samples}:        # the kernels of these batch layouts, compiled or
        model.sample(num=num, length=5, seed=0)  # loaded from the cache before any timing
    if args.compare:
        compare(model, args.compare, args.samples, args.seed)
        return
    print(f"{'pattern':<26} {'way':<16} {'chars/s':>10} {'match':>7} {'new':>7} {'drawn':>9}")
    for regex in args.pattern or PATTERNS:
        for way, rate, matching, new, drawn in run_pattern(model, regex, args.num, args.seed,
                                                            args.max_draws):
            shown = "-" if new != new else f"{new:.1%}"       # no name kept: no share of new ones
            print(f"{regex:<26} {way:<16} {rate:10,.0f} {matching:7.1%} {shown:>7} {drawn:9,}")


if __name__ == "__main__":
    main()
