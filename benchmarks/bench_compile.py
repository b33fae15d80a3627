"""First-run compile time of `charlm train`: the wall time of a run with an empty Numba cache
minus that of the same run with a warm cache, for a stream-mode and a lines-mode corpus.

    python benchmarks/bench_compile.py [--runs 2] [--save]

Each run is the installed command (what a user runs), `charlm train CORPUS --steps 20 --hidden 64`
in a new temporary folder; the stream corpus is the first 200,000 characters of tiny Shakespeare,
the lines corpus the bundled names. Cold runs get a new empty NUMBA_CACHE_DIR; warm runs reuse the
cache of the cold run before them. ``--save`` writes the table to benchmarks/results/compile.md.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results import save

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"


def charlm_command():
    script = Path(sys.executable).with_name("charlm")
    return [str(script)] if script.exists() else [sys.executable, "-m", "charlm"]


def wall_time(corpus, cache):
    with tempfile.TemporaryDirectory() as folder:
        command = charlm_command() + ["train", *corpus, "--steps", "20", "--hidden", "64",
                                      "--eval-every", "20", "--quiet", "--out", "m.npz"]
        start = time.perf_counter()
        subprocess.run(command, cwd=folder, check=True, capture_output=True,
                       env=dict(os.environ, NUMBA_CACHE_DIR=cache))
        return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2, help="cold and warm runs of each corpus")
    parser.add_argument("--save", action="store_true", help="write benchmarks/results/compile.md")
    args = parser.parse_args()
    loads = [os.getloadavg()[0]]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        stream = Path(folder) / "shakespeare-200k.txt"
        stream.write_text(DATA.read_text(encoding="utf-8")[:200_000], encoding="utf-8")
        for name, corpus in (("stream (tiny Shakespeare, 200k characters)", [str(stream)]),
                             ("lines (the bundled names)", [])):
            colds, warms = [], []
            for run in range(args.runs):
                cache = tempfile.mkdtemp(dir=folder)
                colds.append(wall_time(corpus, cache))
                warms.append(wall_time(corpus, cache))
                loads.append(os.getloadavg()[0])
            compile_s = [c - w for c, w in zip(colds, warms)]
            rows.append((name, colds, warms, compile_s))
            print(f"{name}: cold {colds}, warm {warms}", file=sys.stderr)
    lines = ["| corpus | cold run (s) | warm run (s) | compiling: cold - warm (s) |",
             "| --- | --- | --- | --- |"]
    for name, colds, warms, compile_s in rows:
        lines.append(f"| {name} | {', '.join(f'{c:.1f}' for c in colds)} | "
                     f"{', '.join(f'{w:.1f}' for w in warms)} | "
                     f"{', '.join(f'{s:.1f}' for s in compile_s)} (best {min(compile_s):.1f}) |")
    table = "\n".join(lines) + "\n"
    print(table)
    if args.save:
        print("saved", save("compile", table, loads))


if __name__ == "__main__":
    main()
