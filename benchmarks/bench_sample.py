"""Sampling speed: charlm against a plain PyTorch loop, and the start-up of ``charlm sample``.

    python benchmarks/bench_sample.py [--repeats 7]

The model is a 2-layer, 256-unit LSTM over a 65-character vocabulary (tiny Shakespeare's),
randomly initialised: the speed does not depend on what the weights have learned. Figures are
medians over ``--repeats`` runs; the machine's other work makes single runs noisy.

- charlm batch 1: ``Model.sample(length=N)``, characters per second.
- charlm --num 64: ``Model.sample(num=64, length=N)``, total characters per second.
- charlm greedy: ``Model.sample(length=N, temperature=0)`` (``charlm sample --temperature 0``).
- charlm --beam 8: ``Model.beam_search(beam=8, length=N / 4)``, characters of the continuation
  per second (search steps; the 8 beams and the greedy path advance together at each), and its
  ratio to greedy's.
- PyTorch (if installed): the fastest plain loop found, one ``nn.LSTMCell`` per layer, an
  embedding of size H for the input, softmax and ``torch.multinomial`` per character, no grad.
- ``charlm sample --length 200`` wall time, process start to exit, the JIT cache warm.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from charlm.store import checkpoint  # noqa: E402
from charlm.api import Model  # noqa: E402
from charlm.store.checkpoint import Checkpoint  # noqa: E402
from charlm.config import Config  # noqa: E402
from charlm.network.stack import FlatArrays, init_parameters, parameter_shapes  # noqa: E402
from charlm.text.vocab import Vocab  # noqa: E402
from results import save  # noqa: E402

HIDDEN, LAYERS = 256, 2
CHARS = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"   # 65


def build_model():
    vocab = Vocab.from_text(CHARS)
    config = Config(cell="lstm", hidden_size=HIDDEN, num_layers=LAYERS, mode="stream", dropout=0.0)
    params = FlatArrays(parameter_shapes("lstm", len(vocab), HIDDEN, LAYERS))
    init_parameters(params, "lstm", np.random.default_rng(0))
    return Model(Checkpoint(config, vocab, params))


def rate(run, chars, repeats):
    """Median characters per second of run(), which produces ``chars`` characters."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return chars / statistics.median(times)


def torch_rate(vocab_size, length, repeats):
    """The PyTorch loop for a model of the same shape (its own random weights), or None without
    PyTorch."""
    try:
        import torch
    except ImportError:
        return None
    H = HIDDEN
    embedding = torch.nn.Embedding(vocab_size, H)
    cells = [torch.nn.LSTMCell(H, H) for _ in range(LAYERS)]
    linear = torch.nn.Linear(H, vocab_size)

    def run():
        with torch.no_grad():
            state = [(torch.zeros(1, H), torch.zeros(1, H)) for _ in cells]
            token = torch.zeros(1, dtype=torch.long)
            for _ in range(length):
                x = embedding(token)
                for layer, cell in enumerate(cells):
                    state[layer] = cell(x, state[layer])
                    x = state[layer][0]
                probs = torch.softmax(linear(x), dim=-1)
                token = torch.multinomial(probs, 1)[0]

    return rate(run, length, repeats)


def command_wall_time(path, repeats):
    """Median wall time of ``python -m charlm sample --length 200``, after one run that fills the
    JIT cache."""
    command = [sys.executable, "-m", "charlm", "sample", "--model", str(path), "--length", "200"]
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PYTHONPATH=path)
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        subprocess.run(command, check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        if i:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="runs per figure (median)")
    parser.add_argument("--length", type=int, default=20000, help="characters per batch-1 run")
    parser.add_argument("--save", action="store_true", help="write benchmarks/results/sample.md")
    args = parser.parse_args()
    loads = [os.getloadavg()[0]]
    model = build_model()
    single = rate(lambda: model.sample(length=args.length, seed=1), args.length, args.repeats)
    batch_length = max(1, args.length // 16)
    batch = rate(lambda: model.sample(num=64, length=batch_length, seed=1), 64 * batch_length,
                 args.repeats)
    greedy = rate(lambda: model.sample(length=args.length, temperature=0), args.length,
                  args.repeats)
    beam_length = max(1, args.length // 4)
    beam = rate(lambda: model.beam_search(beam=8, length=beam_length), beam_length, args.repeats)
    torch = torch_rate(len(model.vocab), args.length // 4, args.repeats)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "lstm.npz"
        checkpoint.save(path, model.checkpoint)
        wall = command_wall_time(path, args.repeats)
    rows = [
        ("charlm, batch 1", f"{single:,.0f} chars/s"),
        ("charlm, --num 64", f"{batch:,.0f} chars/s (total)"),
        ("--num 64 / batch 1", f"{batch / single:.2f}x"),
        ("charlm, greedy (--temperature 0)", f"{greedy:,.0f} chars/s"),
        ("charlm, --beam 8", f"{beam:,.0f} chars/s"),
        ("--beam 8 / greedy", f"{beam / greedy:.2f}x"),
        ("PyTorch LSTMCell loop, batch 1",
         "not installed (pip install torch)" if torch is None else f"{torch:,.0f} chars/s"),
    ]
    if torch is not None:
        rows.append(("charlm / PyTorch, batch 1", f"{single / torch:.1f}x"))
    rows.append(("charlm sample --length 200", f"{wall:.2f} s wall (warm JIT cache)"))
    print(f"2-layer {HIDDEN}-unit LSTM, {len(model.vocab)} tokens, {os.cpu_count()} cores, "
          f"median of {args.repeats}")
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    if args.save:
        loads.append(os.getloadavg()[0])
        table = "\n".join(["| 2-layer 256-unit LSTM, 67 tokens | speed |", "| --- | --- |"]
                          + [f"| {name} | {value} |" for name, value in rows])
        print("saved", save("sample", table + f"\n\nMedian of {args.repeats} runs.", loads))


if __name__ == "__main__":
    main()
