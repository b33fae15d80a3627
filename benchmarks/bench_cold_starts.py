"""Cold starts (`charlm train --cold-starts P`): the ten-minute default model of tiny Shakespeare
trained with each share of cold starts and seed of ``--runs`` (SHARE@SEED), then scored on the
held-out tenth on charlm's stateful protocol and on nanoGPT's windows.

    python benchmarks/bench_cold_starts.py [--runs 0@1337,0.1@1337,0@2,0.1@2] [--epochs 6.2]
        [--folder F] [--save]

Each run is ``charlm train tinyshakespeare.txt --max-time 10h --epochs 6.2 --hidden 384 --dropout
0.15 --cold-starts P --seed S --json``: the model and regularisation the ten-minute default picks,
its cosine schedule over 6.2 passes of the text instead of ten minutes (the far --max-time only
switches the cosine on), so that runs compare at the same steps whatever the machine's speed. A
rerun takes the same steps to the same losses; the validations that pick its best checkpoint come
when the time allows, so it may keep a checkpoint a few steps apart. Runs go two at a time, each
on one core (``CHARLM_THREADS=1``).
Each best checkpoint is then scored on ``val.txt``, the last 10% of the corpus (what training held
out), with ``charlm score --file val.txt --json`` and with ``--windows 256`` (12,800 windows).

``--folder`` keeps the checkpoints and outputs there (a temporary folder by default); a run or a
score whose output is already there is not run again, so an interrupted table can be finished.
Tiny Shakespeare is read from ../shared/data, never copied into the repo.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from results import save

HERE = Path(__file__).resolve().parent
SHAKESPEARE = HERE.parents[1] / "shared" / "data" / "tinyshakespeare.txt"
MODEL = ["--hidden", "384", "--dropout", "0.15"]      # what --max-time 10m picks for the corpus
VAL_FRAC = 0.1


def charlm(*args):
    return [sys.executable, "-m", "charlm", *map(str, args)]


def run_two_at_a_time(jobs):
    """Run (command, output path) jobs, two at a time on one core each; skip those already done."""
    env = dict(os.environ, CHARLM_THREADS="1")
    pending = [(command, out) for command, out in jobs if not out.exists()]
    while pending:
        batch, pending = pending[:2], pending[2:]
        started = []
        for command, out in batch:
            with open(f"{out}.part", "w") as stdout, open(f"{out}.err", "w") as stderr:
                started.append((subprocess.Popen(command, stdout=stdout, stderr=stderr, env=env),
                                command, out))
        for process, command, out in started:
            if process.wait() != 0:
                sys.exit(f"{' '.join(command)} failed:\n{Path(f'{out}.err').read_text()}")
            os.replace(f"{out}.part", out)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=SHAKESPEARE)
    parser.add_argument("--runs", default="0@1337,0.1@1337,0@2,0.1@2",
                        help="the runs, each --cold-starts SHARE @ --seed SEED, comma-separated")
    parser.add_argument("--epochs", type=float, default=6.2)
    parser.add_argument("--folder", type=Path, default=None)
    parser.add_argument("--save", action="store_true",
                        help="write benchmarks/results/cold-starts.md")
    args = parser.parse_args()
    if not args.corpus.exists():
        sys.exit(f"no corpus at {args.corpus}: pass --corpus")
    try:
        pairs = [(float(p), int(s)) for p, s in (run.split("@") for run in args.runs.split(","))]
    except ValueError:
        sys.exit("--runs: SHARE@SEED, comma-separated, as 0.1@1337")
    folder = args.folder or Path(tempfile.mkdtemp())
    folder.mkdir(parents=True, exist_ok=True)
    text = args.corpus.read_text(encoding="utf-8")
    val = folder / "val.txt"
    val.write_text(text[int(len(text) * (1 - VAL_FRAC)):], encoding="utf-8")
    loads = [os.getloadavg()[0]]

    runs = {(p, s): folder / f"cold{p:g}-seed{s}" for p, s in pairs}
    run_two_at_a_time([(charlm("train", args.corpus, "--max-time", "10h", "--epochs", args.epochs,
                               *MODEL, "--cold-starts", p, "--ema-decay", 0, "--seed", s,
                               "--out", f"{name}.npz", "--json"), Path(f"{name}.json"))
                       for (p, s), name in runs.items()])
    loads.append(os.getloadavg()[0])
    run_two_at_a_time([job for name in runs.values() for job in (
        (charlm("score", "--model", f"{name}.npz", "--file", val, "--json"),
         Path(f"{name}.stateful.json")),
        (charlm("score", "--model", f"{name}.npz", "--file", val, "--windows", 256, "--json"),
         Path(f"{name}.windows.json")))])
    loads.append(os.getloadavg()[0])

    rows = ["| `--cold-starts` | seed | steps (best at) | stateful (nats/char) | nanoGPT's windows "
            "(nats/char) | training loss at the end |",
            "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    for (p, s), name in runs.items():
        summary = json.loads(Path(f"{name}.json").read_text())
        c = summary["config"]
        if (c["cold_starts"], c["hidden_size"], c.get("ema_decay", 0)) != (p, 384, 0):
            sys.exit(f"{name}.json is not a run of --cold-starts {p:g} --ema-decay 0: remove it")
        stateful = json.loads(Path(f"{name}.stateful.json").read_text())["results"][0]
        windows = json.loads(Path(f"{name}.windows.json").read_text())["results"][0]
        rows.append(f"| {p:g} | {s} | {summary['steps']:,} ({summary['best_step']:,}) "
                    f"| {-stateful['log_prob'] / stateful['num_tokens']:.4f} "
                    f"| {windows['windowed_loss']:.4f} | {summary['train_loss']:.3f} |")
    table = "\n".join(rows) + (
        f"\n\nLSTM 2x384, dropout 0.15, batch 50x50, cosine over {args.epochs:g} passes of "
        f"{args.corpus.name}; each best checkpoint scored on its last 10% (val.txt), "
        f"nanoGPT's figure over 12,800 windows of 256 targets.")
    print(table)
    if args.save:
        print("saved", save("cold-starts", table, loads))


if __name__ == "__main__":
    main()
