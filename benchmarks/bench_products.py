"""Where training and batched sampling meet their limit: the speed of one core's matrix products at
the shapes they run, beside one large product on the same core.

    python benchmarks/bench_products.py [--repeats 7] [--save]

Training splits a batch of 50 across the two cores, so every time step multiplies 25 rows by the
recurrent weights, (25 x H)·(H x 4H), through ``linalg.matmul_nt``; ``--num 64`` sampling runs 32
rows a core, each layer above the first as one product of [x | h_{t-1}] by [W_x; W_h],
(32 x 2H)·(2H x 4H), also through ``matmul_nt``; beside it, the same rows by W_h through BLAS
(``np.dot``), which it used before. None of these can be batched over time: step t needs step
t-1. The products over a whole sequence at once (2,500 rows) show what the core reaches when a
product is large. Each figure is the median thread CPU time of ``--repeats`` runs of 100 steps, one
thread, one BLAS thread: a single core's GFLOP/s.
"""
import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from numba import njit  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from charlm.kernels.linalg import matmul, matmul_nt  # noqa: E402
from results import save  # noqa: E402

STEPS = 100
WIDTHS = (128, 256, 384, 512)


@njit(nogil=True)
def steps_nt(h, wt, out, steps):
    for _ in range(steps):
        matmul_nt(h, wt, out)


@njit(nogil=True)
def steps_dot(h, w, out, steps):
    for _ in range(steps):
        np.dot(h, w, out)


def gflops(run, flop, repeats):
    run()
    times = []
    for _ in range(repeats):
        start = time.thread_time()
        run()
        times.append(time.thread_time() - start)
    return flop / statistics.median(times) / 1e9


def row(hidden, repeats, rng):
    w = rng.standard_normal((hidden, 4 * hidden), dtype=np.float32)
    wt = np.ascontiguousarray(w.T)
    stacked_t = rng.standard_normal((4 * hidden, 2 * hidden), dtype=np.float32)   # [W_x; W_h]^T
    figures = []
    for rows, kernel, weights in ((25, steps_nt, wt), (32, steps_nt, stacked_t), (32, steps_dot, w)):
        inputs = weights.shape[1] if kernel is steps_nt else weights.shape[0]
        h = rng.standard_normal((rows, inputs), dtype=np.float32)
        out = np.empty((rows, 4 * hidden), np.float32)
        flop = 2.0 * rows * inputs * 4 * hidden * STEPS
        figures.append(gflops(lambda: kernel(h, weights, out, STEPS), flop, repeats))
    big = rng.standard_normal((2500, hidden), dtype=np.float32)
    out = np.empty((2500, 4 * hidden), np.float32)
    figures.append(gflops(lambda: matmul(big, w, out), 2.0 * 2500 * hidden * 4 * hidden, repeats))
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--save", action="store_true", help="write benchmarks/results/products.md")
    args = parser.parse_args()
    loads = [os.getloadavg()[0]]
    rng = np.random.default_rng(0)
    lines = ["| H | per step, 25 rows by W_h, `matmul_nt` (training) | per step, 32 rows by "
             "[W_x; W_h], `matmul_nt` (`--num 64`) | per step, 32 rows by W_h, BLAS "
             "| 2,500 rows at once, BLAS |", "| --- | ---: | ---: | ---: | ---: |"]
    for hidden in WIDTHS:
        nt, stacked, dot, big = row(hidden, args.repeats, rng)
        lines.append(f"| {hidden} | {nt:.0f} | {stacked:.0f} | {dot:.0f} | {big:.0f} |")
        print(lines[-1], flush=True)
    loads.append(os.getloadavg()[0])
    table = ("\n".join(lines) + "\n\nGFLOP/s of one core (thread CPU time, median of "
             f"{args.repeats}), products of (rows x H)·(H x 4H), or (rows x 2H)·(2H x 4H) for "
             "[W_x; W_h].")
    print(table)
    if args.save:
        print("saved", save("products", table, loads))


if __name__ == "__main__":
    main()
