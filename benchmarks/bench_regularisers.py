"""Round two of the recipe table: the defaults against the defaults with each regulariser of the
AWD-LSTM recipe alone and both together, on tiny Shakespeare and on the bundled names.

    python benchmarks/bench_regularisers.py [--minutes 10] [--names-minutes 5] [--seed N]
        [--recipes NAME,NAME] [--save]

Each run is ``charlm train CORPUS --max-time ... --json --weight-drop 0`` (the defaults when the
table was made) and the recipe's options, one after the other on the whole machine (the time
budget the defaults are sized by is the wall time a user gives). Tiny Shakespeare is read from
../shared/data (never copied into the repo) with its last 10% held out; the names are
``corpora/names.txt``, lines mode, a seeded 10% of them held out. The table gives each run's best validation loss (nats per character: per name
character and <EOS>, for the names), the steps it took and its training speed, which is where a
regulariser's cost per step shows. ``--seed`` runs them all with another seed (``--save`` then
writes ``regularisers-seedN.md``), ``--recipes`` only the recipes named.
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
NAMES = HERE.parent / "corpora" / "names.txt"
BASE = ["--weight-drop", "0"]   # the defaults the table was measured with: weight drop became a
                                # default for small corpora (p >= 3) after it, from these runs
RECIPES = [    # (name, the options added to the base)
    ("defaults", []),
    ("locked dropout", ["--locked-dropout"]),
    ("weight drop 0.2", ["--weight-drop", "0.2"]),
    ("both", ["--locked-dropout", "--weight-drop", "0.2"]),
]


def train(corpus, minutes, options, folder, seed):
    """The --json summary of one run."""
    command = [sys.executable, "-m", "charlm", "train", str(corpus), "--max-time", f"{minutes:g}m",
               "--out", str(folder / "run.npz"), "--force", "--json", *BASE, *options]
    if seed is not None:
        command += ["--seed", str(seed)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr}")
    return json.loads(result.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=SHAKESPEARE)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--names-minutes", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=None, help="the runs' seed (default: charlm's)")
    parser.add_argument("--recipes", default=",".join(name for name, _ in RECIPES),
                        help="the recipes to run, by name, comma-separated")
    parser.add_argument("--save", action="store_true",
                        help="write benchmarks/results/regularisers[-seedN].md")
    args = parser.parse_args()
    known = dict(RECIPES)
    recipes = [(name, known[name]) for name in args.recipes.split(",") if name in known]
    if len(recipes) != len(args.recipes.split(",")):
        sys.exit(f"--recipes: the recipes are {', '.join(known)}")
    if not args.corpus.exists():
        sys.exit(f"no corpus at {args.corpus}: pass --corpus")
    loads = [os.getloadavg()[0]]
    folder = Path(tempfile.mkdtemp())
    results = {}
    for corpus, minutes in ((args.corpus, args.minutes), (NAMES, args.names_minutes)):
        for name, options in recipes:
            s = train(corpus, minutes, options, folder, args.seed)
            results[corpus, name] = s
            loads.append(os.getloadavg()[0])
            print(f"{corpus.name} {name}: best {s['best_val_loss']:.4f} at step {s['best_step']:,}"
                  f" of {s['steps']:,}, {s['chars_per_sec']:,.0f} chars/s", flush=True)
    rows = [f"| recipe | {args.corpus.name}, {args.minutes:g} min: best validation loss | steps "
            f"| chars/s | names, {args.names_minutes:g} min: best validation loss | steps |",
            "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, options in recipes:
        big, names = results[args.corpus, name], results[NAMES, name]
        rows.append(f"| {name} (`{' '.join(options) or 'no option'}`) | {big['best_val_loss']:.4f} "
                    f"| {big['steps']:,} | {big['chars_per_sec']:,.0f} "
                    f"| {names['best_val_loss']:.4f} | {names['steps']:,} |")
    s = results[args.corpus, recipes[0][0]]["config"]
    seed = f"seed {args.seed}" if args.seed is not None else "charlm's default seed"
    table = "\n".join(rows) + (
        f"\n\nOn {args.corpus.name}: {s['cell']} {s['num_layers']}x{s['hidden_size']}, "
        f"dropout {s['dropout']:g}, batch {s['batch_size']}x{s['seq_len']}; best validation loss "
        f"in nats per character; {seed}; each run alone on the machine, with "
        f"`{' '.join(BASE)}` before its own options.")
    print(table)
    if args.save:
        name = "regularisers" + (f"-seed{args.seed}" if args.seed is not None else "")
        print("saved", save(name, table, loads))


if __name__ == "__main__":
    main()
