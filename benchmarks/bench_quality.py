"""Quality: `charlm train CORPUS --max-time Nm` with the defaults, and the validation loss it reaches
against time. Runs the installed command (what a user runs) and reads the checkpoint it writes.

    python benchmarks/bench_quality.py --corpus path/to/tinyshakespeare.txt --minutes 10
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from charlm.config import recipe_text
from results import save

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"


def charlm_command():
    script = Path(sys.executable).with_name("charlm")
    return [str(script)] if script.exists() else [sys.executable, "-m", "charlm"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--out", type=Path, help="keep the checkpoint here (default: a temporary folder)")
    parser.add_argument("--save", action="store_true",
                        help="write the result to benchmarks/results/quality-<minutes>m.md")
    parser.add_argument("extra", nargs="*", help="more `charlm train` options, after --")
    args = parser.parse_args()
    if not args.corpus.exists():
        sys.exit(f"no corpus at {args.corpus}: pass --corpus (see docs/development.md for tiny Shakespeare)")
    loads = [os.getloadavg()[0]]
    folder = Path(tempfile.mkdtemp())
    out = args.out or folder / "quality.npz"
    budget = f"{args.minutes:g}m"
    command = charlm_command() + ["train", str(args.corpus), "--max-time", budget, "--out", str(out),
                                  "--json", "--force"] + args.extra
    print("$", " ".join(command[1:] if len(command) == 1 else command), flush=True)
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(result.stderr.strip())
    summary = json.loads(result.stdout)
    info = json.loads(subprocess.run(charlm_command() + ["info", str(out), "--json"], capture_output=True,
                                     text=True, check=True).stdout)
    sample = subprocess.run(charlm_command() + ["sample", "--model", str(out), "--length", "300",
                                                "--temperature", "0.8", "--seed", "1"],
                            capture_output=True, text=True, check=True).stdout
    loads.append(os.getloadavg()[0])
    report(summary, info, wall, sample, budget, args, loads)
    if not args.out:
        shutil.rmtree(folder)


def report(summary, info, wall, sample, budget, args, loads):
    c = summary["config"]
    recipe = recipe_text(c["dropout"], c.get("locked_dropout"), c.get("weight_drop"),
                         c.get("cold_starts"), c.get("ema_decay"))
    print(f"\nmodel: {c['cell']} {c['num_layers']}x{c['hidden_size']}, {recipe}, "
          f"batch {c['batch_size']}x{c['seq_len']}, {c['parameters']:,} parameters")
    print(f"{'time':>8} {'step':>7} {'train':>7} {'val':>7} {'bits/char':>9}")
    for r in info["history"]:
        train = f"{r['train_loss']:.4f}" if r["train_loss"] is not None else "-"
        print(f"{r['elapsed']:>7.0f}s {r['step']:>7} {train:>7} {r['val_loss']:>7.4f} "
              f"{r['val_loss'] / math.log(2):>9.3f}")
    best = summary["best_val_loss"]
    print(f"\nbest validation loss {best:.4f} nats/char ({best / math.log(2):.3f} bits/char) at step "
          f"{summary['best_step']}; {summary['steps']} steps, {summary['chars_per_sec']:,.0f} chars/s, "
          f"wall time {wall:.0f}s (process start to exit)")
    print("\nsample (temperature 0.8, seed 1):\n" + sample)
    if args.save:
        flat = sample.strip().replace("\n", " / ")[:120].replace("|", "\\|")
        curve = ", ".join(f"{r['val_loss']:.3f} ({r['elapsed']:.0f} s)" for r in info["history"])
        table = ("| command | wall time | best val loss (nats/char) | bits/char | model chosen | "
                 "sample (temperature 0.8) |\n| --- | --- | --- | --- | --- | --- |\n"
                 f"| `charlm train {args.corpus.name} --max-time {budget}` | {wall:.0f} s | {best:.4f} | "
                 f"{best / math.log(2):.3f} | {c['cell'].upper()} {c['num_layers']}x{c['hidden_size']}, "
                 f"{recipe}, {summary['steps']:,} steps, stopped by "
                 f"{summary['stopped']} | `{flat}` |\n\nValidation loss against time: {curve}.")
        print("saved", save(f"quality-{budget}", table, loads))


if __name__ == "__main__":
    main()
