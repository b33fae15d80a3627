"""What the text after a blank is worth: blanks 10% of the characters of held-out text and fills
them three ways, with models trained for the same wall time on the same corpus:

- left context: the left-to-right model's next-character prediction (`charlm fill --left-only`);
- rescoring: the same model, each candidate scored by the text's probability (`charlm fill`);
- bidirectional: a model trained with `--bidirectional` (`charlm fill`).

The held-out text is what training held out: the last 10% of tiny Shakespeare (read from
--shakespeare, never copied into the repository), cut into snippets of --snippet characters, and
the validation lines of the bundled names. Prints a markdown table: the share of blanks filled
with the right character, and blanks filled per second (one process, after a warm-up).

    python benchmarks/bench_fill.py --minutes 3 --workdir /tmp/fill-bench [--save]
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import charlm
from charlm.text.corpus import read_corpus, split_line_indices
from results import save

DEFAULT_SHAKESPEARE = (Path(__file__).resolve().parents[2] / "shared" / "data"
                       / "tinyshakespeare.txt")
BLANK = "\u2588"          # a mark found in neither corpus
VAL_FRAC, SEED = 0.1, 1337  # charlm train's defaults: its validation split
METHODS = [("left context alone", "lr", dict(left_only=True)),
           ("left-to-right rescoring", "lr", {}),
           ("bidirectional", "bi", {})]


def charlm_command():
    script = Path(sys.executable).with_name("charlm")
    return [str(script)] if script.exists() else [sys.executable, "-m", "charlm"]


def train(corpus, out, minutes, bidirectional):
    """Train with the defaults of the saved table for the time budget, validation included (or
    reuse a model already trained there). The checkpoint keeps the best weights by validation:
    validating only at the end instead let the left-to-right model overfit the names (3.21
    bits/char after three minutes, against 2.72 for the best of a default run)."""
    if out.exists():
        return
    # weight drop off: the saved table was measured before it became a default for small corpora
    command = charlm_command() + ["train"] + ([str(corpus)] if corpus else []) + [
        "--max-time", f"{minutes:g}m", "--out", str(out), "--json", "--weight-drop", "0"] + (
        ["--bidirectional"] if bidirectional else [])
    print("$", " ".join(["charlm"] + command[1:]), file=sys.stderr, flush=True)
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(done.stderr.strip())


def held_out_texts(corpus, snippet):
    """The texts training held out: the validation lines (names), or the last 10% of the file in
    snippets (Shakespeare)."""
    read = read_corpus(corpus)
    text = read.text
    if corpus is None:          # the lines training holds out: rows of spans into <EOS> + text
        spans = read.line_spans()
        _, val = split_line_indices(len(spans), VAL_FRAC, SEED)
        return [text[start - 1:start - 1 + length] for start, length in spans[val]]
    val = text[int(len(text) * (1 - VAL_FRAC)):]
    return [val[k:k + snippet] for k in range(0, len(val), snippet)]


def blanked(texts, fraction, chars, rng):
    """Texts of about ``chars`` characters in all (chosen at random), with ``fraction`` of all
    their characters, chosen at random, replaced by BLANK; texts left without a blank are left
    out. Returns (originals, blanked texts, characters in all)."""
    chosen, total = [], 0
    for t in rng.permutation(len(texts)):
        if total >= chars:
            break
        chosen.append(texts[t])
        total += len(texts[t])
    where = set(rng.choice(total, round(fraction * total), replace=False).tolist())
    originals, out, offset = [], [], 0
    for text in chosen:
        marked = "".join(BLANK if offset + i in where else ch for i, ch in enumerate(text))
        offset += len(text)
        if BLANK in marked:
            originals.append(text)
            out.append(marked)
    return originals, out, total


def measure(model, originals, texts, options):
    """(accuracy, blanks per second) of filling texts."""
    model.fill(texts[0], blank=BLANK, top=1, **options)             # warm-up: compile, buffers
    started = time.perf_counter()
    results = model.fill(texts, blank=BLANK, top=1, **options)
    seconds = time.perf_counter() - started
    right = sum(original[b.position] == b.token
                for original, r in zip(originals, results) for b in r.blanks)
    blanks = sum(len(r.blanks) for r in results)
    return right / blanks, blanks / seconds, blanks


def describe(path):
    info = json.loads(subprocess.run(charlm_command() + ["info", str(path), "--json"],
                                     capture_output=True, text=True, check=True).stdout)
    c = info["config"]
    return (f"{c['cell']} {c['num_layers']}x{c['hidden_size']}, {info['steps']} steps, "
            f"val {info['best_val_bpc']:.3f} bits/char")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shakespeare", type=Path, default=DEFAULT_SHAKESPEARE)
    parser.add_argument("--minutes", type=float, default=3.0, help="training time of each model")
    parser.add_argument("--workdir", type=Path, required=True,
                        help="where the models are written (and reused on a second run)")
    parser.add_argument("--fraction", type=float, default=0.1, help="share of characters blanked")
    parser.add_argument("--chars", type=int, default=20_000,
                        help="held-out characters used per corpus (at most)")
    parser.add_argument("--snippet", type=int, default=100, help="Shakespeare snippet length")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--save", action="store_true", help="write benchmarks/results/fill.md")
    args = parser.parse_args()
    loads = [os.getloadavg()[0]]
    if not args.shakespeare.exists():
        sys.exit(f"no tiny Shakespeare at {args.shakespeare}: pass --shakespeare PATH")
    args.workdir.mkdir(parents=True, exist_ok=True)
    rows, notes = [], []
    for name, corpus in (("names (bundled)", None), ("tiny Shakespeare", args.shakespeare)):
        stem = "names" if corpus is None else "shakespeare"
        paths = {kind: args.workdir / f"{stem}-{kind}.npz" for kind in ("lr", "bi")}
        for kind, path in paths.items():
            train(corpus, path, args.minutes, kind == "bi")
        models = {kind: charlm.load(path) for kind, path in paths.items()}
        held_out = held_out_texts(corpus, args.snippet)
        originals, texts, chars = blanked(held_out, args.fraction, args.chars,
                                          np.random.default_rng(args.seed))
        for method, kind, options in METHODS:
            accuracy, speed, blanks = measure(models[kind], originals, texts, options)
            rows.append(f"| {name} | {method} | {accuracy:.1%} | {speed:,.0f} |")
        notes.append(f"{name}: {blanks:,} blanks in {chars:,} held-out characters; left-to-right "
                     f"model {describe(paths['lr'])}; bidirectional {describe(paths['bi'])}")
    loads.append(os.getloadavg()[0])
    table = ("| held-out text | filled by | accuracy | blanks/s |\n| --- | --- | ---: | ---: |\n"
             + "\n".join(rows) + "\n\n" + "\n".join(f"- {note}" for note in notes))
    print(table)
    if args.save:
        print("saved", save("fill", table, loads))


if __name__ == "__main__":
    main()
