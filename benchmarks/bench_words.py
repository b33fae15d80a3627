"""Speed of a word model against a character model of the same size (issue 25).

Both train on tiny Shakespeare (read from ../shared/data, never copied into the repo) with
``charlm train --json`` for the same wall time, one after the other, with the same cell, layers,
units, batch and sequence length; the only difference is ``--tokens``. The figure that compares
them is ``chars_per_sec``: characters of text read per second (for the word model, its tokens per
second times the training text's characters per token), printed beside ``tokens_per_sec``. The
word model's vocabulary is ``--vocab-size`` tokens (default 10,000), whose output layer is its
main cost.

Then batch-1 sampling of a word model of ``--sample-size`` (default 2x512): tokens (words,
punctuation marks and runs of whitespace) and words (the tokens among them that are words) per
second over ``--sample-tokens`` tokens, after a warm-up that compiles the kernels. The weights are those of a one-step training run (sampling
costs the same per token whatever the weights), or of ``--sample-model PATH``: the share of
words among the tokens drawn is a trained model's, so words/s means most from a trained one.

    PYTHONPATH=. python benchmarks/bench_words.py [--seconds 60] [--cell lstm] [--hidden 512]
        [--layers 2] [--vocab-size 10000] [--sample-size 2x512] [--sample-tokens 5000]
        [--sample-model PATH [--sampling-only]] [--repeats 3]

Run it on a quiet machine: every figure is a rate of wall time.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data",
                    "tinyshakespeare.txt")


def train(folder, tokens, args, extra=()):
    """The --json summary of one training run of --seconds (or of the extra options)."""
    out = os.path.join(folder, f"{tokens}.npz")
    command = [sys.executable, "-m", "charlm", "train", args.corpus, "--tokens", tokens,
               "--cell", args.cell, "--hidden", str(args.hidden), "--layers", str(args.layers),
               "--batch-size", str(args.batch_size), "--seq-len", str(args.seq_len),
               "--out", out, "--force", "--json"]
    if tokens == "words":
        command += ["--vocab-size", str(args.vocab_size)]
    command += list(extra) or ["--max-time", f"{args.seconds}s"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(result.stderr)
    return json.loads(result.stdout), out


def sampling_rate(path, tokens):
    """(tokens, words) per second of one batch-1 sample of ``tokens`` tokens, after a warm-up;
    words are the tokens that :func:`charlm.text.words.is_word` calls words."""
    import charlm
    from charlm.text.words import is_word, split
    model = charlm.load(path)
    model.sample(length=50, seed=0, stop_at_eos=False)                # compiles, loads
    start = time.perf_counter()
    text = model.sample(length=tokens, seed=1, stop_at_eos=False)[0]
    seconds = time.perf_counter() - start
    return tokens / seconds, sum(map(is_word, split(text))) / seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default=DATA)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--cell", default="lstm")
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--seq-len", type=int, default=50)
    parser.add_argument("--vocab-size", type=int, default=10_000)
    parser.add_argument("--sample-size", default="2x512")
    parser.add_argument("--sample-tokens", type=int, default=5000)
    parser.add_argument("--sample-model", default=None,
                        help="a trained word model to sample from instead of one-step weights")
    parser.add_argument("--sampling-only", action="store_true",
                        help="with --sample-model: measure its sampling alone, no training")
    parser.add_argument("--repeats", type=int, default=3, help="samples timed; the median is given")
    args = parser.parse_args()
    if args.sampling_only and args.sample_model is None:
        parser.error("--sampling-only needs --sample-model")
    with tempfile.TemporaryDirectory() as folder:
        if not args.sampling_only:
            compare_training(folder, args)
        path, what = args.sample_model, args.sample_model
        if path is None:
            layers, hidden = (int(n) for n in args.sample_size.split("x"))
            sized = argparse.Namespace(**{**vars(args), "layers": layers, "hidden": hidden})
            _, path = train(folder, "words", sized, extra=["--steps", "1", "--val-frac", "0"])
            what = f"word model {args.sample_size}, vocabulary {args.vocab_size + 2:,}, one step"
        rates = sorted(sampling_rate(path, args.sample_tokens) for _ in range(args.repeats))
        rate, word_rate = rates[len(rates) // 2]
        print(f"batch-1 sampling, {what}: {rate:,.0f} tokens/s, {word_rate:,.0f} words/s over "
              f"{args.sample_tokens:,} tokens (median of {args.repeats}; load average "
              f"{os.getloadavg()[0]:.1f})")


def compare_training(folder, args):
    """Train a character and a word model side by side and print their speeds."""
    rows = []
    for tokens in ("chars", "words"):
        summary, _ = train(folder, tokens, args)
        rows.append((tokens, summary))
    print(f"training, {args.cell} {args.layers}x{args.hidden}, batch {args.batch_size}x"
          f"{args.seq_len}, {args.seconds:g}s each, {args.corpus}")
    print(f"{'tokens':<8}{'vocabulary':>12}{'parameters':>13}{'chars/s':>11}{'tokens/s':>11}"
          f"{'val bits/char':>15}")
    for tokens, s in rows:
        bpc = f"{s['best_val_bpc']:.3f}" if s["best_val_bpc"] is not None else "-"
        print(f"{tokens:<8}{s['vocab_size']:>12,}{s['config']['parameters']:>13,}"
              f"{s['chars_per_sec']:>11,.0f}{s['tokens_per_sec']:>11,.0f}{bpc:>15}")
    ratio = rows[1][1]["chars_per_sec"] / rows[0][1]["chars_per_sec"]
    print(f"word model / character model, characters of text per second: {ratio:.2f}")


if __name__ == "__main__":
    main()
