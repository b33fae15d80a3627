"""Labels (issue 26): how well a labelled model classifies held-out lines and keeps to its label
when it generates, against the majority label and a multinomial naive Bayes over character
bigrams, and how fast `charlm classify --file` runs for 2, 10 and 100 labels.

Two labelled corpora built from material at hand, each split 90/10 (seeded) into train.tsv and
held-out.tsv:

- names by ending: the bundled names (corpora/names.txt), labelled `vowel` when the last letter is
  one of a e i o u y, else `consonant`: the label is decided by the last character, the one read
  furthest from where the label enters;
- Shakespeare by speaker: the speech lines of tiny Shakespeare (--shakespeare; never copied into
  the repository) of its --speakers most frequent speakers, each labelled with its speaker.

Two conditionings are compared, trained with the same settings and budget:

- every step (what charlm ships, charlm.text.labels): the label's vector, its token's row of
  layers.0.W_x, is added to layer 0's pre-activations at every step;
- initial state: the label's token is the first input instead of <EOS>, and nothing after. This
  one is a prototype here: charlm's trainer with the batches and validation swapped for the
  prototype's (``InitialStateBatches``), scored through charlm's engine and sampled step by step
  through it.

For each: accuracy on the held-out lines, and the share of samples drawn for label L (temperature
1, --samples per label) that the same model classifies as L. Prints a markdown table.

    python benchmarks/bench_labels.py --minutes 3 --workdir /tmp/labels-bench [--save]
    python benchmarks/bench_labels.py --steps 1000 --workdir /tmp/labels-steps   # equal updates
    python benchmarks/bench_labels.py --quick --workdir /tmp/labels-quick   # checks the script
"""
import argparse
import json
import os
import subprocess
import sys
import time
import zlib
from collections import Counter
from pathlib import Path

import numpy as np

import charlm
from charlm.network.engine import Engine
from charlm.scoring.classify import log_prior
from charlm.scoring import passes
from charlm.scoring.passes import COLUMNS, pad_examples
from charlm.text import labels as labels_module
from charlm.text.corpus import LineBatches, read_corpus
from charlm.text.vocab import EOS_ID, drawable

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SHAKESPEARE = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
VOWELS = set("aeiouy")
SEED = 1337


# ---- the labelled corpora ------------------------------------------------------------------------

def names_by_ending():
    names = [n for n in read_corpus(None).text.split("\n") if n.strip()]
    return [("vowel" if n[-1].lower() in VOWELS else "consonant", n) for n in names]


def shakespeare_by_speaker(path, speakers):
    pairs, speaker = [], None
    for block in Path(path).read_text(encoding="utf-8").split("\n\n"):
        lines = block.strip("\n").split("\n")
        if lines and lines[0].endswith(":"):
            speaker = lines[0][:-1]
            pairs += [(speaker, line) for line in lines[1:] if line.strip()]
    keep = {name for name, _ in Counter(s for s, _ in pairs).most_common(speakers)}
    return [(s, line) for s, line in pairs if s in keep]


def split(pairs, folder, seed=SEED):
    """Write train.tsv and held-out.tsv (10% of the lines, a seeded choice) into folder."""
    folder.mkdir(parents=True, exist_ok=True)
    held = np.zeros(len(pairs), bool)
    held[np.random.default_rng(seed).permutation(len(pairs))[:len(pairs) // 10]] = True
    train = [p for p, h in zip(pairs, held) if not h]
    test = [p for p, h in zip(pairs, held) if h]
    for name, part in (("train.tsv", train), ("held-out.tsv", test)):
        (folder / name).write_text("".join(f"{label}\t{text}\n" for label, text in part),
                                   encoding="utf-8")
    return train, test


# ---- the baselines -------------------------------------------------------------------------------

def bigrams(text):
    text = "\x02" + text + "\x03"          # the start and the end are features too
    return [text[i:i + 2] for i in range(len(text) - 1)]


def naive_bayes(train, test, alpha=1.0):
    """Accuracy of a multinomial naive Bayes over character bigrams (add-alpha smoothing, the
    prior from the training counts)."""
    names = sorted({label for label, _ in train})
    features = {}
    for _, text in train:
        for b in bigrams(text):
            features.setdefault(b, len(features))
    counts = np.zeros((len(names), len(features)))
    index = {name: k for k, name in enumerate(names)}
    for label, text in train:
        for b in bigrams(text):
            counts[index[label], features[b]] += 1
    log_p = np.log((counts + alpha) / (counts + alpha).sum(axis=1, keepdims=True))
    prior = np.log(np.bincount([index[label] for label, _ in train], minlength=len(names))
                   / len(train))
    right = 0
    for label, text in test:
        seen = [features[b] for b in bigrams(text) if b in features]
        right += names[int(np.argmax(prior + log_p[:, seen].sum(axis=1)))] == label
    return right / len(test)


def majority(train, test):
    label = Counter(label for label, _ in train).most_common(1)[0][0]
    return sum(t == label for t, _ in test) / len(test)


# ---- the initial-state prototype ----------------------------------------------------------------

class InitialStateBatches:
    """The batches of a labelled run (``labels.LabelledLineBatches``, same lines, same hidden
    share) with the label's token as each example's first input instead of at every step."""

    def __init__(self, inner):
        self.inner = inner

    def __len__(self):
        return len(self.inner)

    def batch(self, epoch, index):
        inner = self.inner
        chunks = LineBatches.batch(inner, epoch, index)         # plain ids, <EOS> first
        chosen = inner._order[1][index * inner.B:(index + 1) * inner.B]
        rows = inner.rows[chosen]
        hidden = np.random.default_rng([inner.seed, epoch, index, 0x1ABE1]).random(len(chosen))
        rows[hidden < labels_module.HIDDEN_SHARE] = 0
        chunks[0][0][0] = np.where(rows > 0, rows, EOS_ID)    # views of one padded batch
        return chunks


def first_input_log_prob(engine, lines, label_rows=None):
    """Validation of LabelledLines read after their label's token (``label_rows``: the trainer
    passes the lines' own)."""
    log_prob = 0.0
    for start in range(0, len(lines), COLUMNS):
        part = list(range(start, min(len(lines), start + COLUMNS)))
        x, y = pad_examples([lines[i] for i in part], lines=True)
        x[0] = lines.rows[part]
        log_prob += float(engine.log_probs(x, y, engine.zero_state(x.shape[1])).sum())
    return log_prob, sum(len(ids) + 1 for ids in lines)


def train_initial_state(train_path, out, options):
    """Train the initial-state prototype in this process with charlm's trainer (its batches
    and its validation swapped for the prototype's); returns its Model."""
    from charlm.training.trainer import new_trainer
    trainer = new_trainer(str(train_path), str(out), force=True, labelled=True, **options)
    trainer.dataset.train = InitialStateBatches(trainer.dataset.train)
    saved = passes.lines_log_prob
    passes.lines_log_prob = first_input_log_prob
    try:
        trainer.run()
    finally:
        passes.lines_log_prob = saved
    return charlm.load(str(out))


def initial_state_classify(model, texts):
    """Predicted label of each text under the initial-state prototype (all labels as columns of
    one engine pass per batch, as charlm.scoring.classify does)."""
    names, K = model.config.labels, len(model.config.labels)
    rows = labels_module.label_rows(model.vocab, names)
    engine, prior, out = Engine(model.network), log_prior(model.config), []
    for start in range(0, len(texts), max(1, COLUMNS // K)):
        part = texts[start:start + max(1, COLUMNS // K)]
        x, y = pad_examples([model.vocab.encode(t) for t in part for _ in range(K)], lines=True)
        x[0] = np.tile(rows, len(part))
        ll = engine.log_probs(x, y, engine.zero_state(x.shape[1])).sum(axis=0)
        out += [names[int(np.argmax(row + prior))] for row in ll.reshape(len(part), K)]
    return out


def initial_state_samples(model, label, num, rng, length=200):
    """num samples of label drawn step by step through the engine (temperature 1), each read
    after the label's token."""
    row = int(labels_module.label_rows(model.vocab, [label])[0])
    engine = Engine(model.network)
    allowed = drawable(model.vocab, "lines")
    state = engine.zero_state(num)
    token = np.full(num, row, np.int64)
    texts, done = [[] for _ in range(num)], np.zeros(num, bool)
    for step in range(length):
        p = np.exp(engine.log_softmax(token[None, :].astype(np.int32), state)[0])
        p *= allowed[0 if step == 0 else 1]
        p /= p.sum(axis=1, keepdims=True)
        token = np.array([rng.choice(len(row_p), p=row_p) for row_p in p])
        for j in np.flatnonzero(~done):
            if token[j] == EOS_ID:
                done[j] = True
            else:
                texts[j].append(model.vocab.tokens[token[j]])
        if done.all():
            break
    return ["".join(t) for t in texts]


# ---- measuring -----------------------------------------------------------------------------------

def charlm_command():
    script = Path(sys.executable).with_name("charlm")
    return [str(script)] if script.exists() else [sys.executable, "-m", "charlm"]


def train_every_step(train_path, out, options):
    """charlm's own labelled training (the label at every step), through the command."""
    args = [str(train_path), "--labels", "--out", str(out), "--force", "--json"]
    for key, value in options.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    subprocess.run(charlm_command() + ["train"] + args, check=True, capture_output=True)
    return charlm.load(str(out))


def sample_purity(model, classify, sample, num):
    """Share of the samples drawn for each label that classify() gives that label."""
    right = total = 0
    for label in model.config.labels:
        texts = [t for t in sample(label, num) if t]
        right += sum(p == label for p in classify(texts))
        total += num
    return right / total


def measure_corpus(name, pairs, folder, options, prototype_options, samples):
    train, test = split(pairs, folder)
    texts = [t for _, t in test]
    truth = [label for label, _ in test]
    rows = []
    model = train_every_step(folder / "train.tsv", folder / "every.npz", options)
    predicted = [r.label for r in model.classify(texts)]
    rows.append((name, "charlm, label at every step", np.mean(np.equal(predicted, truth)),
                 sample_purity(model, lambda ts: [r.label for r in model.classify(ts)],
                               lambda label, n: model.sample(label=label, num=n, seed=1), samples)))
    first = train_initial_state(folder / "train.tsv", folder / "initial.npz", prototype_options)
    rng = np.random.default_rng(1)
    rows.append((name, "prototype, label as the initial state",
                 np.mean(np.equal(initial_state_classify(first, texts), truth)),
                 sample_purity(first, lambda ts: initial_state_classify(first, ts),
                               lambda label, n: initial_state_samples(first, label, n, rng),
                               samples)))
    rows.append((name, "naive Bayes, character bigrams", naive_bayes(train, test), None))
    rows.append((name, "majority label", majority(train, test), None))
    return rows, f"{name}: {len(train):,} training lines, {len(test):,} held out, " \
                 f"{len(model.config.labels)} labels; {describe(folder / 'every.npz')}"


def describe(path):
    with np.load(path, allow_pickle=False) as arrays:
        config = json.loads(str(arrays["config"]))
    return f"{config['cell']} {config['num_layers']}x{config['hidden_size']}"


def classify_speed(folder, label_counts, options):
    """texts/s of `charlm classify --file` (the whole command) on the bundled names, for models
    labelled with each count of labels (label = CRC-32 of the name mod K: speed only)."""
    names = [n for n in read_corpus(None).text.split("\n") if n.strip()]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "names.txt").write_text("\n".join(names) + "\n", encoding="utf-8")
    speeds = {}
    for K in label_counts:
        tsv = folder / f"names-{K}.tsv"
        tsv.write_text("".join(f"L{zlib.crc32(n.encode()) % K:03d}\t{n}\n" for n in names),
                       encoding="utf-8")
        model = folder / f"names-{K}.npz"
        args = [str(tsv), "--labels", "--steps", "1", "--out", str(model), "--force", "--quiet"]
        for key in ("cell", "hidden", "layers"):
            if key in options:
                args += [f"--{key}", str(options[key])]
        subprocess.run(charlm_command() + ["train"] + args, check=True, capture_output=True)
        command = charlm_command() + ["classify", "--file", str(folder / "names.txt"), "--json",
                                      "--model", str(model)]
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        speeds[K] = len(names) / (time.perf_counter() - started)
    return speeds, len(names)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0,
                        help="training time of each model (default 3)")
    parser.add_argument("--steps", type=int, default=None,
                        help="train each model this many steps instead of --minutes (the same "
                             "updates for both conditionings, whatever else runs on the machine)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/labels-bench"))
    parser.add_argument("--shakespeare", type=Path, default=DEFAULT_SHAKESPEARE)
    parser.add_argument("--speakers", type=int, default=5)
    parser.add_argument("--samples", type=int, default=50, help="samples per label")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--cell", default="lstm")
    parser.add_argument("--quick", action="store_true",
                        help="a few training steps and samples: checks that the script runs")
    parser.add_argument("--save", action="store_true", help="save the table to results/labels.md")
    args = parser.parse_args()
    steps = 20 if args.quick else args.steps
    budget = {"steps": steps} if steps else {"max_time": f"{args.minutes * 60:.0f}s"}
    # weight drop off: the saved table was measured before it became a default for small corpora
    options = dict(cell=args.cell, hidden=args.hidden, layers=args.layers, weight_drop=0, **budget)
    prototype_options = dict(cell=args.cell, hidden_size=args.hidden, num_layers=args.layers,
                             weight_drop=0.0,
                             **({"steps": steps} if steps else {"max_time": args.minutes * 60}))
    samples = 5 if args.quick else args.samples
    corpora = [("names by ending", names_by_ending())]
    if args.shakespeare.exists():
        corpora.append(("Shakespeare by speaker",
                        shakespeare_by_speaker(args.shakespeare, args.speakers)))
    rows, notes, loads = [], [], [os.getloadavg()[0]]
    for name, pairs in corpora:
        folder = args.workdir / name.split()[0].lower()
        corpus_rows, note = measure_corpus(name, pairs, folder, options, prototype_options,
                                           samples)
        rows += corpus_rows
        notes.append(note)
        loads.append(os.getloadavg()[0])
    speeds, count = classify_speed(args.workdir / "speed", (2, 10, 100), options)
    loads.append(os.getloadavg()[0])
    table = ("| corpus | classifier | held-out accuracy | samples classified as their label |\n"
             "| --- | --- | ---: | ---: |\n"
             + "\n".join(f"| {c} | {m} | {a:.1%} | {'' if s is None else f'{s:.1%}'} |"
                         for c, m, a, s in rows)
             + "\n\n| labels | `charlm classify --file` texts/s |\n| ---: | ---: |\n"
             + "\n".join(f"| {K} | {v:,.0f} |" for K, v in speeds.items())
             + "\n\n" + "\n".join(f"- {note}" for note in notes)
             + f"\n- speed: the {count:,} bundled names, the whole command (start-up included), "
               f"{args.cell} {args.layers}x{args.hidden}; each model trained "
             + (f"{steps} steps" if steps else f"{args.minutes:g} minutes"))
    print(table)
    if args.save:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from results import save
        print("saved", save("labels", table, loads))


if __name__ == "__main__":
    main()
