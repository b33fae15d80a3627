"""Data-parallel training over MPI (issue 13): 2 ranks of 1 thread against 1 process of 2 threads
on this machine, the all-reduce's time per step beside the step's, and a projection (a model on
paper) of the scaling to 8 and 64 machines over 10 and 100 Gbit/s from the measured bytes.

    PYTHONPATH=. python benchmarks/bench_mpi.py [--hidden 256,512] [--steps 30,15] [--rounds 2]

Both sides run `charlm train` on tiny Shakespeare (read from ../shared/data, never copied into
the repo), 2-layer LSTM, batch 50x100, no validation, with --json: 1 process with
CHARLM_THREADS=2, and `mpiexec -n 2` with CHARLM_THREADS=1 per rank, which splits each batch
into the same two halves. chars/s is the run's (after the kernels are loaded: training only).
With --rounds the two sides alternate and the medians are reported, so that other load on the
machine slows both alike. Each step of the ranks waits at a barrier for the slower one, then
all-reduces the gradient: the table gives the two apart.

The projection assumes each machine trains a batch of 50x100 per step at this machine's measured
speed (the global batch grows with the machines), and a ring all-reduce that is not overlapped
with the computation: each rank sends and receives 2 (N - 1) / N times the gradient's bytes, and
pays 2 (N - 1) latencies of LATENCY_US.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from results import save  # noqa: E402

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data",
                    "tinyshakespeare.txt")
BIN = os.path.dirname(sys.executable)
LATENCY_US = 20.0           # one message between machines, in the model
MACHINES = (8, 64)
GBITS = (10, 100)


def train(hidden, steps, ranks, folder):
    """--json of one run: 1 process of 2 threads (ranks None) or `mpiexec -n ranks`."""
    command = [os.path.join(BIN, "charlm"), "train", DATA, "--hidden", str(hidden), "--layers", "2",
               "--batch-size", "50", "--seq-len", "100", "--steps", str(steps), "--val-frac", "0",
               "--dropout", "0", "--out", os.path.join(folder, "bench.npz"), "--force", "--json"]
    if ranks:
        command = [os.path.join(BIN, "mpiexec"), "-n", str(ranks)] + command
    env = dict(os.environ, CHARLM_THREADS="1" if ranks else "2", OPENBLAS_NUM_THREADS="1")
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(hidden, steps, rounds, folder, loads):
    one, two = [], []
    for _ in range(rounds):
        one.append(train(hidden, steps, None, folder))
        two.append(train(hidden, steps, 2, folder))
        loads.append(os.getloadavg()[0])
    return {
        "hidden": hidden, "parameters": one[0]["config"]["parameters"],
        "one_chars_per_sec": statistics.median(r["chars_per_sec"] for r in one),
        "two_chars_per_sec": statistics.median(r["chars_per_sec"] for r in two),
        "step_ms": statistics.median(r["distributed"]["step_ms"] for r in two),
        "wait_ms": statistics.median(r["distributed"]["wait_ms"] for r in two),
        "allreduce_ms": statistics.median(r["distributed"]["allreduce_ms"] for r in two),
        "bytes": two[0]["distributed"]["allreduce_bytes"],
    }


def projection(result, machines, gbits):
    """(chars/s of all the machines, efficiency) in the model of the module docstring."""
    chars_per_step = 50 * 100
    compute = chars_per_step / result["one_chars_per_sec"]
    bandwidth = gbits * 1e9 / 8
    comm = (2 * (machines - 1) / machines * result["bytes"] / bandwidth
            + 2 * (machines - 1) * LATENCY_US * 1e-6)
    return machines * chars_per_step / (compute + comm), compute / (compute + comm)


def tables(results):
    rows = ["| LSTM | parameters | 1 process x 2 threads | 2 ranks x 1 thread | ratio | step | "
            "wait for the slower rank | all-reduce | bytes/step |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        ratio = r["two_chars_per_sec"] / r["one_chars_per_sec"]
        rows.append(f"| 2x{r['hidden']} | {r['parameters']:,} | {r['one_chars_per_sec']:,.0f} chars/s | "
                    f"{r['two_chars_per_sec']:,.0f} chars/s | {ratio:.0%} | {r['step_ms']:,.0f} ms | "
                    f"{r['wait_ms']:,.1f} ms | {r['allreduce_ms']:,.1f} ms | {r['bytes'] / 1e6:.1f} MB |")
    rows += ["", "Projection (a model on paper, not a measurement): each machine trains batch "
             f"50x100 per step at the speed measured here; ring all-reduce, not overlapped, "
             f"{LATENCY_US:g} µs per message.", "",
             "| LSTM | link | " + " | ".join(f"{n} machines" for n in MACHINES) + " |",
             "|---|---|" + "---|" * len(MACHINES)]
    for r in results:
        for gbits in GBITS:
            cells = []
            for n in MACHINES:
                speed, efficiency = projection(r, n, gbits)
                cells.append(f"{speed:,.0f} chars/s ({efficiency:.1%})")
            rows.append(f"| 2x{r['hidden']} | {gbits} Gbit/s | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", default="256,512")
    parser.add_argument("--steps", default="30,15", help="steps of each run, per --hidden")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    loads = [os.getloadavg()[0]]
    hiddens = [int(h) for h in args.hidden.split(",")]
    steps = [int(s) for s in args.steps.split(",")]
    with tempfile.TemporaryDirectory() as folder:
        results = [measure(h, s, args.rounds, folder, loads) for h, s in zip(hiddens, steps)]
    table = tables(results)
    print(table)
    print("saved to", save("mpi", table, loads))


if __name__ == "__main__":
    main()
