"""Speed of ``charlm score --file``: a 2x256 LSTM (random weights, vocabulary from the text) scores
the first 1 MB of tiny Shakespeare (read from ../shared/data, never copied into the repo).

    PYTHONPATH=. python benchmarks/bench_score.py [--runs 5] [--model PATH] [--exact]

Prints chars/s of the batched stream scoring (segments with burn-in), the median of the runs, as
a table; the goal (issue 4) is 80,000 chars/s. Other processes on the two cores slow the wall
clock down, so the table also gives chars per CPU-second of this process times the number of
cores: what the wall-clock speed would be with the cores to itself (the threads never wait on
each other, so their CPU time is work). ``--model`` scores with a trained checkpoint
instead (a stream-mode one); ``--exact`` also times the exact sequential pass once and prints how
far the batched bits/char is from it.
"""
import argparse
import os
import statistics
import tempfile
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from charlm.scoring import scorer
from charlm.api import Model, load
from charlm.store.checkpoint import Checkpoint
from charlm.cli.warmup import warm_up_forward
from charlm.config import Config
from charlm.network.stack import FlatArrays, init_parameters, parameter_shapes
from charlm.text.vocab import Vocab
from results import save

CORPUS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "tinyshakespeare.txt")
SIZE = 1_000_000
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def build_model(text, cell="lstm", hidden=256, layers=2, mode="stream"):
    vocab = Vocab.from_text(text)
    params = FlatArrays(parameter_shapes(cell, len(vocab), hidden, layers))
    init_parameters(params, cell, np.random.default_rng(0))
    config = Config(cell=cell, hidden_size=hidden, num_layers=layers, mode=mode, dropout=0.0)
    return Model(Checkpoint(config, vocab, params))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--model", help="a trained stream-mode checkpoint instead of random weights")
    parser.add_argument("--exact", action="store_true",
                        help="also time the exact sequential pass and compare its bits/char")
    parser.add_argument("--corpus", default=CORPUS)
    parser.add_argument("--save", action="store_true", help="write benchmarks/results/score.md")
    args = parser.parse_args()
    loads = [os.getloadavg()[0]]

    with open(args.corpus, "rb") as f:
        data = f.read(SIZE)
    text = data.decode("utf-8", errors="ignore")
    model = load(args.model) if args.model else build_model(text)
    warm_up_forward(model.network)
    c = model.config
    table = Table(title=f"score --file: {c.cell} {c.num_layers}x{c.hidden_size} "
                        f"({'trained' if args.model else 'random weights'}), first "
                        f"{len(text):,} characters of tiny Shakespeare")
    for name in ("run", "chars/s", "seconds", f"chars/CPU-s x {CORES}", "bits/char"):
        table.add_column(name, justify="right")
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "first-1MB.txt")
        with open(path, "wb") as f:
            f.write(data)
        speeds, cpu_speeds = [], []
        for i in range(args.runs):
            speed, seconds, cpu_speed, result = timed(model, path, exact=False)
            speeds.append(speed)
            cpu_speeds.append(cpu_speed)
            table.add_row(f"batched {i + 1}", f"{speed:,.0f}", f"{seconds:.3f}",
                          f"{cpu_speed:,.0f}", f"{result.bits_per_char:.6f}")
        table.add_row("batched median", f"[bold]{statistics.median(speeds):,.0f}[/]", "",
                      f"[bold]{statistics.median(cpu_speeds):,.0f}[/]", "")
        if args.exact:
            speed, seconds, _, exact = timed(model, path, exact=True)
            table.add_row("exact", f"{speed:,.0f}", f"{seconds:.3f}", "",
                          f"{exact.bits_per_char:.6f}")
            gap = result.bits_per_char - exact.bits_per_char
            table.add_row("batched - exact", "", "", "",
                          f"{gap:+.2e} ({gap / exact.bits_per_char:+.1e})")
    Console().print(table)
    if args.save:
        loads.append(os.getloadavg()[0])
        markdown = ("| scoring the first 1 MB of tiny Shakespeare | chars/s | chars per CPU-second "
                    f"x {CORES} |\n| --- | --- | --- |\n| `score_file`, {c.cell} {c.num_layers}x"
                    f"{c.hidden_size}, median of {args.runs} | {statistics.median(speeds):,.0f} | "
                    f"{statistics.median(cpu_speeds):,.0f} |")
        print("saved", save("score", markdown, loads))


def timed(model, path, exact):
    """(chars/s, seconds, chars per CPU-second x cores, result) of one scoring of path."""
    start, cpu = time.perf_counter(), time.process_time()
    result = scorer.score_file(model, path, exact=exact)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return result.num_tokens / seconds, seconds, result.num_tokens / cpu * CORES, result


if __name__ == "__main__":
    main()
