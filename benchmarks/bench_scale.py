"""Corpora larger than memory (issue 13): `charlm prepare` speed, and `charlm train`'s time to its
first step and peak memory on a prepared 2 GB corpus against the same model on a 20 MB one.

    PYTHONPATH=. python benchmarks/bench_scale.py [--gigabytes 2] [--hidden 256] [--steps 10]
        [--rounds 3] [--folder /tmp]

The corpora are generated in a temporary folder (removed at the end, prepared ids included): tiny
Shakespeare (read from ../shared/data, never copied into the repo) over and over, each copy with
its paragraphs in another seeded order, so that the text is not one period repeated. The 20 MB
corpus is under charlm's 64 MB threshold, so train reads it into memory as it always has; the
2 GB one is prepared first (timed: `charlm prepare --json`), and train reads it through the map.

Each training runs in its own process, as `charlm train` runs it (prepare, load the kernels,
which an untimed run first compiles into the cache, run), validating once, at the end: "first
step" is the wall time from starting the process to the end of the first optimizer step, "peak
RSS" its VmHWM at the end, after the validation; each is the median of --rounds runs.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from results import save  # noqa: E402

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data",
                    "tinyshakespeare.txt")
BLOCK_BYTES = 64 << 20


def generate(path, size_bytes, seed=0):
    """Write about size_bytes of tiny Shakespeare's paragraphs, each copy in a seeded order."""
    with open(DATA, encoding="utf-8") as f:
        paragraphs = [p.encode("utf-8") for p in f.read().split("\n\n")]
    rng = np.random.default_rng(seed)
    written = 0
    with open(path, "wb") as f:
        while written < size_bytes:
            block = b"\n\n".join(paragraphs[k] for k in rng.permutation(len(paragraphs))) + b"\n\n"
            block = block[:size_bytes - written]
            f.write(block)
            written += len(block)


def charlm_command():
    return [os.path.join(os.path.dirname(sys.executable), "charlm")]


def prepare(path):
    started = time.perf_counter()
    done = subprocess.run(charlm_command() + ["prepare", path, "--json"], capture_output=True,
                          text=True, check=True)
    report = json.loads(done.stdout)
    report["wall_seconds"] = time.perf_counter() - started
    return report


def train(path, args):
    """Train in a child process (this script with --child); returns its report."""
    command = [sys.executable, os.path.abspath(__file__), "--child", path, "--hidden",
               str(args.hidden), "--steps", str(args.steps), "--spawned", repr(time.time())]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def child(args):
    """What `charlm train CORPUS --hidden H --steps N` runs, timing its first step."""
    from charlm.cli.warmup import warm_up_training
    from charlm.training.reporter import Reporter
    from charlm.training.trainer import new_trainer

    class FirstStep(Reporter):
        seconds = None

        def step(self, trainer, loss):
            if self.seconds is None:
                self.seconds = time.time() - args.spawned

    reporter = FirstStep()
    out = os.path.join(os.path.dirname(args.child), "bench.npz")
    trainer = new_trainer(args.child, out, force=True, hidden_size=args.hidden,
                               steps=args.steps, eval_every=args.steps, reporter=reporter)
    warm_up_training(trainer.config.cell, trainer.config.optimizer)
    trainer.run()
    print(json.dumps({"first_step_seconds": reporter.seconds, "peak_rss_mb": peak_rss_mb(),
                      "chars": trainer.dataset.train_chars, "val_tokens": trainer.dataset.val_tokens,
                      "eval_seconds": trainer.run_state.eval_seconds}))


def peak_rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gigabytes", type=float, default=2.0)
    parser.add_argument("--small-megabytes", type=float, default=20.0)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3, help="runs of each training (medians)")
    parser.add_argument("--folder", default=tempfile.gettempdir(),
                        help="where to generate the corpora (needs twice --gigabytes free)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--spawned", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    loads = [os.getloadavg()[0]]
    folder = tempfile.mkdtemp(prefix="charlm-scale-", dir=args.folder)
    try:
        big, small = os.path.join(folder, "big.txt"), os.path.join(folder, "small.txt")
        generate(big, int(args.gigabytes * 1e9))
        generate(small, int(args.small_megabytes * 1e6), seed=1)
        prepared = prepare(big)
        loads.append(os.getloadavg()[0])
        train(small, argparse.Namespace(hidden=8, steps=1))     # the kernels into Numba's cache
        runs = {"small": [], "big": []}
        for _ in range(args.rounds):        # alternating, so that other load slows both alike
            for name, path in (("small", small), ("big", big)):
                runs[name].append(train(path, args))
            loads.append(os.getloadavg()[0])
        loads.append(os.getloadavg()[0])
    finally:
        shutil.rmtree(folder)
    size_mb = prepared["tokens"] / 1e6
    rows = [f"| `charlm prepare` {args.gigabytes:g} GB | {prepared['seconds']:.1f} s, "
            f"{prepared['mb_per_sec']:.0f} MB/s ({prepared['dtype']} ids, {size_mb:,.0f} M characters) | |"]
    for name, label in (("small", f"{args.small_megabytes:g} MB in memory"),
                        ("big", f"{args.gigabytes:g} GB prepared")):
        r = {key: statistics.median(run[key] for run in runs[name])
             for key in ("first_step_seconds", "peak_rss_mb", "val_tokens", "eval_seconds")}
        rows.append(f"| `charlm train`, 2x{args.hidden} LSTM, {label} | first step at "
                    f"{r['first_step_seconds']:.1f} s | peak RSS {r['peak_rss_mb']:.0f} MB "
                    f"(validation of {int(r['val_tokens']):,} characters: {r['eval_seconds']:.1f} s) |")
    table = "| what | time | memory |\n|---|---|---|\n" + "\n".join(rows)
    print(table)
    print("saved to", save("scale", table, loads))


if __name__ == "__main__":
    main()
