"""Speed of ``charlm score --file``: a 2x256 LSTM (random weights, vocabulary from the text) scores
the first 1 MB of tiny Shakespeare (read from ../shared/data, never copied into the repo).

    PYTHONPATH=. python benchmarks/bench_score.py [--runs 5] [--exact]

Prints chars/s, the median of the runs, as a table; the goal (issue 4) is 80,000 chars/s.
"""
import argparse
import os
import statistics
import tempfile
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from charlm import scorer
from charlm.api import Model
from charlm.checkpoint import Checkpoint
from charlm.config import Config
from charlm.model import FlatArrays, init_parameters, parameter_shapes
from charlm.vocab import Vocab

CORPUS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "tinyshakespeare.txt")
SIZE = 1_000_000


def build_model(text, cell="lstm", hidden=256, layers=2, mode="stream"):
    vocab = Vocab.from_text(text)
    params = FlatArrays(parameter_shapes(cell, len(vocab), hidden, layers))
    init_parameters(params, cell, np.random.default_rng(0))
    config = Config(cell=cell, hidden_size=hidden, num_layers=layers, mode=mode, dropout=0.0)
    return Model(Checkpoint(config, vocab, params))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--exact", action="store_true", help="the sequential (batch 1) stream path")
    parser.add_argument("--corpus", default=CORPUS)
    args = parser.parse_args()

    with open(args.corpus, "rb") as f:
        data = f.read(SIZE)
    text = data.decode("utf-8", errors="ignore")
    model = build_model(text)
    scorer.warm_up(model)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "first-1MB.txt")
        with open(path, "wb") as f:
            f.write(data)
        for _ in range(args.runs):
            start = time.perf_counter()
            result = scorer.score_file(model, path, exact=args.exact)
            seconds = time.perf_counter() - start
            rows.append((result.num_tokens / seconds, seconds, result.bits_per_char))

    table = Table(title=f"score --file: 2x256 LSTM, first {len(text):,} characters of tiny "
                        f"Shakespeare ({'exact, sequential' if args.exact else 'batched, burn-in'})")
    for name in ("run", "chars/s", "seconds", "bits/char"):
        table.add_column(name, justify="right")
    for i, (speed, seconds, bpc) in enumerate(rows, 1):
        table.add_row(str(i), f"{speed:,.0f}", f"{seconds:.3f}", f"{bpc:.4f}")
    median = statistics.median(r[0] for r in rows)
    table.add_row("median", f"[bold]{median:,.0f}[/]", "", "")
    Console().print(table)


if __name__ == "__main__":
    main()
