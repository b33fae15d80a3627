"""Speed of ``charlm score --file --dynamic``: a 2x512 LSTM (random weights, vocabulary from the
text) reads the first 20,000 characters of tiny Shakespeare (from ../shared/data, never copied into
the repo) in segments of 50, adapting after each (docs/dynamic-evaluation.md).

    PYTHONPATH=. python benchmarks/bench_dynamic.py [--runs 3] [--chars 20000] [--hidden 512]
        [--layers 2] [--cell lstm] [--segment 50] [--model PATH] [--save]

Prints chars/s of each run and their median, as a table; the goal (issue 23) is 6,000 chars/s for
the 2x512 LSTM on 2 cores (a PyTorch prototype at batch 1: about 2,000). The table also gives
chars per CPU-second of this process times the number of cores, and the same text scored
statically in one sequential pass (``score --file --exact``), for scale: dynamic evaluation adds a
backward pass and an update of every weight per segment to that forward pass. Random weights cost
what trained ones do: the work does not depend on the values. ``--save`` writes
benchmarks/results/dynamic.md.
"""
import argparse
import os
import statistics
import tempfile
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from charlm.api import Model, load
from charlm.cli.warmup import warm_up_forward
from charlm.config import Config
from charlm.network.stack import FlatArrays, init_parameters, parameter_shapes
from charlm.scoring import dynamic, scorer
from charlm.store.checkpoint import Checkpoint
from charlm.text.vocab import Vocab
from results import save

CORPUS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "tinyshakespeare.txt")
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def build_model(text, cell, hidden, layers):
    vocab = Vocab.from_text(text)
    params = FlatArrays(parameter_shapes(cell, len(vocab), hidden, layers))
    init_parameters(params, cell, np.random.default_rng(0))
    config = Config(cell=cell, hidden_size=hidden, num_layers=layers, mode="stream", dropout=0.0)
    return Model(Checkpoint(config, vocab, params))


def timed(model, path, **how):
    """(chars/s, seconds, chars per CPU-second x cores, result) of one scoring of path."""
    start, cpu = time.perf_counter(), time.process_time()
    result = scorer.score_file(model, path, **how)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return result.num_tokens / seconds, seconds, result.num_tokens / cpu * CORES, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--chars", type=int, default=20_000)
    parser.add_argument("--cell", default="lstm", choices=["lstm", "gru", "rnn"])
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--segment", type=int, default=dynamic.Settings.segment)
    parser.add_argument("--model",
                        help="a trained stream-mode checkpoint instead of random weights")
    parser.add_argument("--corpus", default=CORPUS)
    parser.add_argument("--save", action="store_true", help="write benchmarks/results/dynamic.md")
    args = parser.parse_args()
    loads = [os.getloadavg()[0]]

    with open(args.corpus, encoding="utf-8") as f:
        text = f.read(args.chars)
    model = load(args.model) if args.model else build_model(text, args.cell, args.hidden,
                                                             args.layers)
    settings = {"segment": args.segment}
    warm_up_forward(model.network)
    dynamic.warm_up(model.network)
    c = model.config
    table = Table(title=f"score --file --dynamic: {c.cell} {c.num_layers}x{c.hidden_size} "
                        f"({'trained' if args.model else 'random weights'}), first "
                        f"{len(text):,} characters of tiny Shakespeare, segments of {args.segment}")
    for name in ("run", "chars/s", "seconds", f"chars/CPU-s x {CORES}", "bits/char"):
        table.add_column(name, justify="right")
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "text.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        speeds, cpu_speeds = [], []
        for i in range(args.runs):
            speed, seconds, cpu_speed, result = timed(model, path, dynamic=settings)
            speeds.append(speed)
            cpu_speeds.append(cpu_speed)
            table.add_row(f"dynamic {i + 1}", f"{speed:,.0f}", f"{seconds:.3f}",
                          f"{cpu_speed:,.0f}", f"{result.bits_per_char:.4f}")
        table.add_row("dynamic median", f"[bold]{statistics.median(speeds):,.0f}[/]", "",
                      f"[bold]{statistics.median(cpu_speeds):,.0f}[/]", "")
        speed, seconds, cpu_speed, result = timed(model, path, exact=True)
        table.add_row("static, sequential", f"{speed:,.0f}", f"{seconds:.3f}", f"{cpu_speed:,.0f}",
                      f"{result.bits_per_char:.4f}")
    Console().print(table)
    if args.save:
        loads.append(os.getloadavg()[0])
        markdown = (f"| dynamic evaluation, first {len(text):,} characters of tiny Shakespeare | "
                    f"chars/s | chars per CPU-second x {CORES} |\n| --- | --- | --- |\n"
                    f"| `score --file --dynamic`, {c.cell} {c.num_layers}x{c.hidden_size}, "
                    f"segments of {args.segment}, median of {args.runs} | "
                    f"{statistics.median(speeds):,.0f} | {statistics.median(cpu_speeds):,.0f} |")
        print("saved", save("dynamic", markdown, loads))


if __name__ == "__main__":
    main()
