"""Speed of an exported model in onnxruntime next to charlm on the same model: a 2x256 LSTM
(random weights, vocabulary of tiny Shakespeare, read from ../shared/data) or ``--model PATH``.

    PYTHONPATH=. python benchmarks/bench_export.py [--runs 5] [--model PATH] [--save]

Two jobs, each the median of ``--runs``:

- one step at batch 1: generating text one token at a time. onnxruntime: ``session.run`` on one
  token with the state fed back, the draw in numpy (what docs/export.md's loop does); charlm:
  ``Model.sample(num=1)``, whose loop runs inside its kernel. Tokens per second.
- a whole text: the log-probabilities of ``--chars`` characters of the corpus read as one
  sequence (batch 1). onnxruntime: one ``session.run``; charlm: ``Model.score`` of the text.
  Characters per second.

Both runtimes use every core they see (onnxruntime's default intra-op threads, charlm's threads);
figures are wall clock, so run it on a quiet machine. Prints a table; ``--save`` writes
``benchmarks/results/export.md``.
"""
import argparse
import json
import os
import statistics
import tempfile
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from charlm.api import Model, load
from charlm.cli.warmup import warm_up_forward, warm_up_sampling
from charlm.config import Config
from charlm.network.stack import FlatArrays, init_parameters, parameter_shapes
from charlm.store.checkpoint import Checkpoint
from charlm.text.vocab import Vocab
from results import save

CORPUS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data",
                      "tinyshakespeare.txt")


def build_model(text, cell="lstm", hidden=256, layers=2):
    vocab = Vocab.from_text(text)
    params = FlatArrays(parameter_shapes(cell, len(vocab), hidden, layers))
    init_parameters(params, cell, np.random.default_rng(0))
    config = Config(cell=cell, hidden_size=hidden, num_layers=layers, mode="stream", dropout=0.0)
    return Model(Checkpoint(config, vocab, params))


class Session:
    """The exported model in onnxruntime, with its state names and zero state."""

    def __init__(self, path):
        import onnxruntime as ort
        self.session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        self.meta = json.loads(self.session.get_modelmeta().custom_metadata_map["charlm"])
        self.states = [i.name for i in self.session.get_inputs() if i.name != "tokens"]

    def zero_state(self):
        return {s: np.zeros((self.meta["num_layers"], 1, self.meta["hidden_size"]), np.float32)
                for s in self.states}

    def generate(self, steps, seed):
        rng, token, state = np.random.default_rng(seed), 0, self.zero_state()
        for _ in range(steps):
            log_probs, *new = self.session.run(None, {"tokens": np.array([[token]]), **state})
            p = np.exp(log_probs[0, -1].astype(np.float64))
            p[1] = 0.0
            cdf = np.cumsum(p)
            token = int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
            state = dict(zip(self.states, new))

    def score(self, ids):
        self.session.run(["log_probs"], {"tokens": np.array([[0] + ids[:-1]]), **self.zero_state()})


def median_rate(count, job, runs):
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        job()
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--model",
                        help="a trained left-to-right checkpoint instead of random weights")
    parser.add_argument("--steps", type=int, default=2000, help="tokens generated one at a time")
    parser.add_argument("--chars", type=int, default=100_000, help="characters of the whole text")
    parser.add_argument("--corpus", default=CORPUS)
    parser.add_argument("--save", action="store_true", help="write benchmarks/results/export.md")
    args = parser.parse_args()
    loads = [os.getloadavg()[0]]

    with open(args.corpus, encoding="utf-8") as f:
        text = f.read()
    model = load(args.model) if args.model else build_model(text)
    piece = text[:args.chars]
    ids = [int(i) for i in model.vocab.encode(piece)]
    warm_up_forward(model.network)
    warm_up_sampling(model.network)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.onnx")
        model.export(path)
        session = Session(path)
        session.generate(10, 0)
        rows = [
            ("one step, batch 1 (tokens/s)",
             median_rate(args.steps, lambda: session.generate(args.steps, 1), args.runs),
             median_rate(args.steps, lambda: model.sample(num=1, length=args.steps, seed=1,
                                                          stop_at_eos=False), args.runs)),
            (f"whole text, {len(piece):,} chars, batch 1 (chars/s)",
             median_rate(len(piece), lambda: session.score(ids), args.runs),
             median_rate(len(piece), lambda: model.score(piece), args.runs)),
        ]
    c = model.config
    title = (f"{c.cell} {c.num_layers}x{c.hidden_size} "
             f"({'trained' if args.model else 'random weights'}), {len(model.vocab)} tokens, "
             f"median of {args.runs}")
    table = Table("job", "onnxruntime", "charlm", "onnxruntime / charlm", title=title)
    for name, ort_rate, charlm_rate in rows:
        table.add_row(name, f"{ort_rate:,.0f}", f"{charlm_rate:,.0f}",
                      f"{ort_rate / charlm_rate:.2f}")
    Console().print(table)
    if args.save:
        loads.append(os.getloadavg()[0])
        markdown = (f"| {title} | onnxruntime | charlm |\n| --- | --- | --- |\n"
                    + "".join(f"| {name} | {ort_rate:,.0f} | {charlm_rate:,.0f} |\n"
                              for name, ort_rate, charlm_rate in rows))
        print("saved", save("export", markdown, loads))


if __name__ == "__main__":
    main()
