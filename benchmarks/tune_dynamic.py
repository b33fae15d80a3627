"""How dynamic evaluation's defaults were chosen: a grid of settings scored on text that no reported
figure is measured on (docs/dynamic-evaluation.md, "How the defaults were chosen").

    python benchmarks/tune_dynamic.py MODEL TEXT [--chars 50000] [--lr 1e-4,3e-4,...]
        [--decay 0,1e-3,...] [--segment 25,50,100] [--out results.jsonl]

MODEL is a stream-mode checkpoint trained without TEXT (e.g. on the first 80% of tiny
Shakespeare), TEXT the text to tune on (e.g. the next 10%: never the last 10%, the held-out part
on which figures are reported). Prints, for each combination, the dynamic bits/char of the first
``--chars`` characters of TEXT beside the static one, best first, and appends each result as a
JSON line to ``--out``.
"""
import argparse
import itertools
import json
import os
import tempfile
import time

from charlm.api import load
from charlm.scoring import dynamic, scorer


def floats(text):
    return [float(v) for v in text.split(",")]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("text")
    parser.add_argument("--chars", type=int, default=50_000)
    parser.add_argument("--lr", type=floats, default=[1e-4, 3e-4, 1e-3, 3e-3])
    parser.add_argument("--decay", type=floats, default=[0.0, 1e-3, 1e-2])
    parser.add_argument("--segment", type=lambda t: [int(v) for v in t.split(",")],
                        default=[dynamic.Settings.segment])
    parser.add_argument("--rms-decay", type=floats, default=[dynamic.Settings.rms_decay])
    parser.add_argument("--out", default="tune_dynamic.jsonl")
    args = parser.parse_args()

    model = load(args.model)
    with open(args.text, encoding="utf-8") as f:
        text = f.read(args.chars)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "tune.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        static = scorer.score_file(model, path, exact=True).bits_per_char
        print(f"static: {static:.4f} bits/char over {len(text):,} characters", flush=True)
        for lr, decay, segment, beta in itertools.product(args.lr, args.decay, args.segment,
                                                          args.rms_decay):
            settings = dict(lr=lr, decay=decay, segment=segment, rms_decay=beta)
            start = time.perf_counter()
            result = scorer.score_file(model, path, dynamic=settings)
            row = dict(settings, bits_per_char=result.bits_per_char, static=static,
                       chars=len(text), seconds=time.perf_counter() - start,
                       model=args.model, text=args.text)
            rows.append(row)
            print(json.dumps(row), flush=True)
            with open(args.out, "a") as out:
                out.write(json.dumps(row) + "\n")
    print("best first:")
    for row in sorted(rows, key=lambda r: r["bits_per_char"]):
        print(f"  lr {row['lr']:g}, decay {row['decay']:g}, segment {row['segment']}, "
              f"rms_decay {row['rms_decay']:g}: {row['bits_per_char']:.4f} bits/char "
              f"({row['bits_per_char'] - static:+.4f})")


if __name__ == "__main__":
    main()
