"""Which training recipe learns most in a short run: the runs that chose charlm's defaults.

    python benchmarks/bench_recipes.py [--minutes 20] [--save]

A ten-minute run costs ten minutes of the whole machine, so the recipes run two at a time, each
on one core (``CHARLM_THREADS=1``) for ``--minutes`` (20 by default: about the steps that ten
minutes on two cores give), through the Python API, on tiny Shakespeare with its last 10% held
out. Recipe A is the defaults before 2026-11-24; each other recipe changes what its row says.
The table gives each run's best validation loss and the steps it took.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from results import save

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"
EARLIER = dict(hidden_size=384, dropout=0.25, seq_len=100, beta2=0.999, weight_decay=0.0,
               lr_min_frac=0.1)
RECIPES = [   # (name, what it changes, the options), run in pairs in this order
    ("A", "the earlier defaults: 2x384 LSTM, dropout 0.25, 100 steps of backpropagation, Adam "
          "beta2 0.999, no weight decay, cosine to 10% of the peak", {}),
    ("B", "A with beta2 0.99, weight decay 0.1, cosine to 2%",
     dict(beta2=0.99, weight_decay=0.1, lr_min_frac=0.02)),
    ("C", "A with 50 steps of backpropagation", dict(seq_len=50)),
    ("D", "A with dropout 0.15", dict(dropout=0.15)),
]

ONE_RUN = """
import json, sys
import charlm
from charlm.store.checkpoint import load
corpus, out, seconds, options = sys.argv[1], sys.argv[2], float(sys.argv[3]), json.loads(sys.argv[4])
charlm.train(corpus, out=out, force=True, max_time=seconds, **options)
run = load(out, with_training_state=True).training.run
print(json.dumps({"best": run.best_val_loss, "best_step": run.best_step, "steps": run.step}))
"""


def start(corpus, folder, name, options, minutes):
    command = [sys.executable, "-c", ONE_RUN, str(corpus), str(folder / f"{name}.npz"),
               str(minutes * 60), json.dumps({**EARLIER, **options})]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "CHARLM_THREADS": "1"})


def finish(process):
    out, _ = process.communicate()
    if process.returncode != 0:
        sys.exit(f"a run failed (exit {process.returncode})")
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--save", action="store_true", help="write benchmarks/results/recipes.md")
    args = parser.parse_args()
    if not args.corpus.exists():
        sys.exit(f"no corpus at {args.corpus}: pass --corpus")
    loads = [os.getloadavg()[0]]
    folder = Path(tempfile.mkdtemp())
    rows = ["| recipe | best validation loss (nats/char) | steps |", "| --- | ---: | ---: |"]
    for pair in (RECIPES[0:2], RECIPES[2:4]):
        running = [start(args.corpus, folder, name, options, args.minutes) for name, _, options in pair]
        for (name, change, _), process in zip(pair, running):
            result = finish(process)
            rows.append(f"| {name}: {change} | {result['best']:.4f} | {result['steps']:,} |")
            print(rows[-1], flush=True)
        loads.append(os.getloadavg()[0])
    table = ("\n".join(rows) + f"\n\nEach run on one core for {args.minutes:g} minutes, two at a "
             "time (A beside B, C beside D).")
    print(table)
    if args.save:
        print("saved", save("recipes", table, loads))


if __name__ == "__main__":
    main()
