"""Training speed of charlm against PyTorch, side by side on this machine (issue 5).

Both sides train the same model on tiny Shakespeare (read from ../shared/data, never copied into the
repo): a 2-layer LSTM or GRU over the characters, a linear output layer, cross-entropy, Adam at
lr 2e-3, gradients clipped to global norm 5, batch 50, sequence 50, the recurrent state carried
(detached) from batch to batch. charlm feeds one-hot characters (layer 0's input product is a row
gather, docs/model.md); PyTorch an ``nn.Embedding(V, H)``, as the benchmark's issue set it.

    PYTHONPATH=. python benchmarks/bench_train.py [--configs lstm-128,gru-256] [--seconds 20]
        [--rounds 3] [--save] [--no-torch]

Each side of each configuration runs in its own subprocess, so that its peak RSS (VmHWM) is its
own; after a warm-up, the speed is the median chars/s over several timed windows. With ``--rounds``
the two sides alternate, and the medians pool every round's windows: other processes on the machine
then slow both sides alike. The charlm compile time is measured once, in a subprocess with an empty
Numba cache: everything ``charlm train`` needs for one cell (a training step, an evaluation, the
optimizers). PyTorch is an optional extra (``pip install '.[bench]'``); without it, only charlm runs.

Each side's speed is also given in GFLOP/s beside the roof, the speed of one 2048^3 sgemm through
numpy's BLAS on all cores, measured in the same run. A character's forward pass costs
2·G·H·(D_in + H) FLOP per layer (D_in = 0 for layer 0, whose one-hot input product is a row gather)
plus 2·H·V for the output layer; training counts three times the forward (backward: twice).
``--save`` writes the table to benchmarks/results/train.md (see update_readme.py).
"""
import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from results import save

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data",
                    "tinyshakespeare.txt")
CONFIGS = {"lstm-128": ("lstm", 128), "lstm-256": ("lstm", 256), "lstm-512": ("lstm", 512),
           "gru-256": ("gru", 256)}
LAYERS, BATCH, SEQ, LR, CLIP = 2, 50, 50, 2e-3, 5.0
GATES = {"lstm": 4, "gru": 3}
ROOF_N = 2048


def training_flop_per_char(cell, hidden, vocab_size):
    """3 x the forward FLOP of one character (see the module docstring)."""
    G, H = GATES[cell], hidden
    forward = sum(2 * G * H * ((0 if layer == 0 else H) + H) for layer in range(LAYERS))
    return 3 * (forward + 2 * H * vocab_size)


def sgemm_roof():
    """GFLOP/s of the best of a few (ROOF_N x ROOF_N) float32 products through numpy."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((ROOF_N, ROOF_N), dtype=np.float32) for _ in range(2))
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * ROOF_N ** 3 / best / 1e9


# ---- what both sides share ------------------------------------------------------------------------

def stream_data(path):
    """Token ids (charlm's vocabulary: <EOS>, <UNK>, then the characters in code-point order) cut
    into BATCH parallel streams: x, y (steps, BATCH), y one step ahead of x."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    index = {ch: i + 2 for i, ch in enumerate(sorted(set(text)))}
    ids = np.fromiter((index[ch] for ch in text), np.int32, len(text))
    n = (len(ids) - 1) // BATCH
    x = ids[:n * BATCH].reshape(BATCH, n).T
    y = ids[1:n * BATCH + 1].reshape(BATCH, n).T
    return np.ascontiguousarray(x), np.ascontiguousarray(y), len(index) + 2


def peak_rss_mb():
    """Peak resident memory of this process: VmHWM, or ru_maxrss where /proc is missing."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed_run(step, x, warmup, seconds, windows):
    """Call step(x_batch, y_batch, first) over the streams: the first call (compile or load) timed
    alone, then warm-up seconds, then `windows` windows of seconds / windows each.
    Returns (first call seconds, chars/s per window)."""
    steps = x.shape[0] // SEQ
    batch = 0

    def run_one():
        nonlocal batch
        step(batch % steps, batch % steps == 0)
        batch += 1

    start = time.perf_counter()
    run_one()
    first = time.perf_counter() - start
    end = time.perf_counter() + warmup
    while time.perf_counter() < end:
        run_one()
    rates = []
    for _ in range(windows):
        start, done = time.perf_counter(), 0
        while True:
            run_one()
            done += 1
            elapsed = time.perf_counter() - start
            if elapsed >= seconds / windows:
                break
        rates.append(done * SEQ * BATCH / elapsed)
    return first, rates


# ---- the two sides, each in its own process -------------------------------------------------------

def charlm_side(cell, hidden, args):
    from charlm.network.stack import FlatArrays, Network, init_parameters, parameter_shapes
    from charlm.kernels.optim import squared_norm
    from charlm.config import Config
    from charlm.training.trainer import Optimizer

    x, y, V = stream_data(args.data)
    params = FlatArrays(parameter_shapes(cell, V, hidden, LAYERS))
    init_parameters(params, cell, np.random.default_rng(0))
    grads = params.like()
    net = Network(cell, V, hidden, LAYERS, params)
    optimizer = Optimizer(Config(), params.flat, decayed=params.matrices())
    state = [None, 0]

    def step(i, restart):
        if restart:
            state[0] = net.zero_state(BATCH)
        xb, yb = x[i * SEQ:(i + 1) * SEQ], y[i * SEQ:(i + 1) * SEQ]
        _, _, state[0] = net.loss_and_gradients(xb, yb, state[0], grads)
        norm = np.sqrt(squared_norm(grads.flat))
        state[1] += 1
        optimizer.step(params.flat, grads.flat, LR, min(1.0, CLIP / (norm + 1e-6)), state[1])

    return timed_run(step, x, args.warmup, args.seconds, args.windows)


def torch_side(cell, hidden, args):
    import torch
    from torch import nn

    x, y, V = stream_data(args.data)
    x, y = torch.from_numpy(x.astype(np.int64)), torch.from_numpy(y.astype(np.int64))
    torch.manual_seed(0)
    rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[cell](hidden, hidden, LAYERS)
    model = nn.ModuleDict({"embed": nn.Embedding(V, hidden), "rnn": rnn, "out": nn.Linear(hidden, V)})
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    loss_fn = nn.CrossEntropyLoss()
    state = [None]

    def step(i, restart):
        if restart:
            state[0] = None
        xb, yb = x[i * SEQ:(i + 1) * SEQ], y[i * SEQ:(i + 1) * SEQ]
        h, carried = model["rnn"](model["embed"](xb), state[0])
        loss = loss_fn(model["out"](h).reshape(-1, V), yb.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        optimizer.step()
        state[0] = tuple(s.detach() for s in carried) if cell == "lstm" else carried.detach()

    return timed_run(step, x, args.warmup, args.seconds, args.windows)


def compile_side(cell):
    """Seconds to import charlm's training code and compile everything a run needs."""
    start = time.perf_counter()
    from charlm.cli.warmup import warm_up_training
    warm_up_training(cell)
    return time.perf_counter() - start


def worker(args):
    cell, hidden = CONFIGS[args.config] if args.config else (args.cell, None)
    if args.worker == "compile":
        print(json.dumps({"seconds": compile_side(cell)}))
        return
    if args.worker == "roof":
        print(json.dumps({"gflops": sgemm_roof()}))
        return
    side = charlm_side if args.worker == "charlm" else torch_side
    first, rates = side(cell, hidden, args)
    print(json.dumps({"first": first, "rates": rates, "rss_mb": peak_rss_mb()}))


# ---- the parent: run the workers, print and write the table --------------------------------------

def run_worker(args, *options, env=None):
    command = [sys.executable, os.path.abspath(__file__), "--data", args.data,
               "--seconds", str(args.seconds), "--warmup", str(args.warmup),
               "--windows", str(args.windows), *options]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"benchmark worker {' '.join(options)} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(args):
    has_torch = not args.no_torch and importlib.util.find_spec("torch") is not None
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        compile_seconds = run_worker(args, "--worker", "compile", "--cell", "lstm", env=env)["seconds"]
    rows = []
    loads = [os.getloadavg()[0]]
    vocab_size = stream_data(args.data)[2]
    for name in args.configs:
        sides = {"charlm": []} | ({"torch": []} if has_torch else {})
        roofs = []
        for _ in range(args.rounds):
            roofs.append(run_worker(args, "--worker", "roof")["gflops"])
            for side in sides:
                sides[side].append(run_worker(args, "--worker", side, "--config", name))
        row = {"config": name, "cell": CONFIGS[name][0], "hidden": CONFIGS[name][1],
               "roof": statistics.median(roofs),
               "flop": training_flop_per_char(*CONFIGS[name], vocab_size)}
        for side, results in sides.items():
            row[side] = statistics.median(r for res in results for r in res["rates"])
            row[side + "_rss_mb"] = max(res["rss_mb"] for res in results)
            row[side + "_first_s"] = results[0]["first"]
        row["ratio"] = row["charlm"] / row["torch"] if has_torch else None
        rows.append(row)
        loads.append(os.getloadavg()[0])
        print(f"{name}: charlm {row['charlm']:,.0f} chars/s" +
              (f", PyTorch {row['torch']:,.0f} chars/s, ratio {row['ratio']:.2f}" if has_torch else ""),
              file=sys.stderr)
    return rows, compile_seconds, has_torch, (min(loads), max(loads))


HEADER = ("model", "charlm chars/s", "PyTorch chars/s", "ratio", "charlm GFLOP/s (of roof)",
          "PyTorch GFLOP/s (of roof)", "sgemm roof GFLOP/s", "charlm peak RSS", "PyTorch peak RSS")


def table_rows(rows):
    def gflops(r, side):
        rate = r[side] * r["flop"] / 1e9
        return f"{rate:.0f} ({rate / r['roof']:.0%})"

    for r in rows:
        torch = "torch" in r
        yield (f"{r['cell'].upper()} {LAYERS}x{r['hidden']}", f"{r['charlm']:,.0f}",
               f"{r['torch']:,.0f}" if torch else "-", f"{r['ratio']:.2f}x" if torch else "-",
               gflops(r, "charlm"), gflops(r, "torch") if torch else "-", f"{r['roof']:.0f}",
               f"{r['charlm_rss_mb']:.0f} MB", f"{r['torch_rss_mb']:.0f} MB" if torch else "-")


def markdown(rows, compile_seconds, loads, args):
    lines = ["| " + " | ".join(HEADER) + " |", "|" + " --- |" * len(HEADER)]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_rows(rows)]
    lines += ["", f"Batch {BATCH}, sequence {SEQ}, Adam, clip {CLIP:g}; median of "
              f"{args.rounds * args.windows} windows of {args.seconds / args.windows:g} s per side, "
              f"the sides alternated over {args.rounds} rounds. charlm's first compile (empty "
              f"Numba cache, LSTM): {compile_seconds:.1f} s."]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default=",".join(CONFIGS),
                        help=f"comma-separated, from {', '.join(CONFIGS)} (default: all)")
    parser.add_argument("--seconds", type=float, default=20.0, help="timed seconds per side and round")
    parser.add_argument("--windows", type=int, default=5, help="timed windows per side and round")
    parser.add_argument("--warmup", type=float, default=3.0, help="untimed seconds before the windows")
    parser.add_argument("--rounds", type=int, default=1, help="alternate the two sides this many times")
    parser.add_argument("--save", action="store_true", help="write the table to benchmarks/results/train.md")
    parser.add_argument("--no-torch", action="store_true", help="run charlm only")
    parser.add_argument("--data", default=DATA, help="the training text (default: tiny Shakespeare)")
    parser.add_argument("--worker", choices=("charlm", "torch", "compile", "roof"), help=argparse.SUPPRESS)
    parser.add_argument("--config", choices=list(CONFIGS), help=argparse.SUPPRESS)
    parser.add_argument("--cell", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    args.configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in args.configs if c not in CONFIGS]
    if unknown:
        parser.error(f"unknown config {', '.join(unknown)}; choose from {', '.join(CONFIGS)}")
    if not os.path.exists(args.data):
        parser.error(f"no training text at {args.data}")

    rows, compile_seconds, has_torch, loads = measure(args)
    from rich.console import Console
    from rich.table import Table
    table = Table(title="Training speed, charlm vs PyTorch" + ("" if has_torch else " (PyTorch not installed)"))
    for column in HEADER:
        table.add_column(column, justify="left" if column == "model" else "right")
    for cells in table_rows(rows):
        table.add_row(*cells)
    console = Console()
    console.print(table)
    console.print(f"charlm first compile (empty Numba cache): {compile_seconds:.1f} s; "
                  f"load average {loads[0]:.1f} to {loads[1]:.1f}")
    if args.save:
        print("saved", save("train", markdown(rows, compile_seconds, loads, args), loads))


if __name__ == "__main__":
    main()
