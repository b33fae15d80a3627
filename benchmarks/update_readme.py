"""Copy the benchmarks' saved tables (``benchmarks/results/NAME.md``) into the results page
(``docs/results.md``), the other pages of ``docs/`` that show one, and the README's headline table.

    python benchmarks/update_readme.py [--check]

A page shows a saved table between the markers ``<!-- results: NAME -->`` and ``<!-- /results -->``;
the README's headline table stands between ``<!-- headline -->`` and ``<!-- /headline -->`` and is
a few rows of those tables (see ``HEADLINE``). ``--check`` changes nothing and exits 1 if any page
differs from the saved tables or a saved table is shown on no page.
"""
import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDER = ROOT / "benchmarks" / "results"
BLOCK = re.compile(r"(<!-- results: (?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- /results -->)", re.S)
HEADLINE_BLOCK = re.compile(r"(<!-- headline -->\n)(?P<body>.*?)(<!-- /headline -->)", re.S)
PROVENANCE = re.compile(r"^Measured (?P<date>\S+) with `(?P<command>[^`]+)`", re.M)


def pages():
    """The pages that may show saved tables: the README and every page of docs/."""
    return [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))


def saved(name, folder=FOLDER):
    path = folder / f"{name}.md"
    if not path.exists():
        sys.exit(f"a page shows results '{name}' but {path} does not exist: run the benchmark "
                 "that saves it")
    return path.read_text()


def rows(name, folder=FOLDER):
    """The first markdown table of a saved result as {first cell: {column: cell}}."""
    lines = [line for line in saved(name, folder).splitlines() if line.startswith("|")]
    split = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines]
    header, body = split[0], split[2:]
    return {row[0]: dict(zip(header, row)) for row in body}


def command(name, folder=FOLDER):
    """The command that measured a saved table, from its provenance line."""
    match = PROVENANCE.search(saved(name, folder))
    return match["command"] if match else f"benchmarks/bench_{name}.py"


# The README's headline: (what, charlm's figure, beside it, the saved table it comes from). Each
# figure is a cell of a saved table, so the headline changes when the benchmark is rerun.
def _train(model):
    return (f"training, {model}", lambda t: t["train"][model]["charlm chars/s"] + " chars/s",
            lambda t: "PyTorch {PyTorch chars/s} chars/s ({ratio})".format(**t["train"][model]),
            "train")


def _quality(minutes):
    def row(t):
        return next(iter(t[f"quality-{minutes}m"].values()))
    return (f"tiny Shakespeare, `charlm train --max-time {minutes}m`",
            lambda t: row(t)["best val loss (nats/char)"] + " nats/char",
            lambda t: row(t)["model chosen"].split(",")[0] + " chosen, validation on the last 10%",
            f"quality-{minutes}m")


HEADLINE = [
    _train("LSTM 2x256"),
    _train("GRU 2x256"),
    ("sampling, LSTM 2x256, one sample", lambda t: t["sample"]["charlm, batch 1"]["speed"],
     lambda t: "PyTorch LSTMCell loop {}".format(t["sample"]["PyTorch LSTMCell loop, batch 1"]["speed"]),
     "sample"),
    ("sampling, LSTM 2x256, `--num 64`", lambda t: t["sample"]["charlm, --num 64"]["speed"],
     lambda t: "{} one sample".format(t["sample"]["--num 64 / batch 1"]["speed"]), "sample"),
    ("scoring 1 MB, LSTM 2x256", lambda t: next(iter(t["score"].values()))["chars/s"] + " chars/s",
     lambda t: "`charlm score --file`: segments side by side", "score"),
    _quality(10),
    _quality(30),
]


def headline(folder=FOLDER):
    """The README's headline table, its rows read from the saved tables, and their commands."""
    names = list(dict.fromkeys(name for *_, name in HEADLINE))
    tables = {name: rows(name, folder) for name in names}
    lines = ["| measured | charlm | beside it |", "| --- | --- | --- |"]
    lines += [f"| {what} | {ours(tables)} | {beside(tables)} |" for what, ours, beside, _ in HEADLINE]
    lines += ["", "Measured by:", ""]
    lines += [f"- `{command(name, folder)}`" for name in names]
    return "\n".join(lines) + "\n"


def updated(text, folder=FOLDER):
    """A page with every results block (and a headline block) rewritten from the saved tables."""
    def results(match):
        return match.group(1) + saved(match["name"], folder) + match.group(4)

    def head(match):
        return match.group(1) + headline(folder) + match.group(3)
    return HEADLINE_BLOCK.sub(head, BLOCK.sub(results, text))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a page is out of date")
    args = parser.parse_args()
    stale, shown = [], set()
    for path in pages():
        text = path.read_text()
        shown.update(match["name"] for match in BLOCK.finditer(text))
        new = updated(text)
        if new != text:
            stale.append(path.relative_to(ROOT))
            if not args.check:
                path.write_text(new)
    unshown = sorted(p.stem for p in FOLDER.glob("*.md") if p.stem not in shown)
    if unshown:     # a saved table belongs on the results page, with the prose that reads it
        print(f"no page shows {', '.join(unshown)}: add <!-- results: NAME --> blocks to "
              "docs/results.md", file=sys.stderr)
    if args.check and (stale or unshown):
        sys.exit(f"out of date: {', '.join(map(str, stale)) or 'none'}; not shown: "
                 f"{', '.join(unshown) or 'none'}")


if __name__ == "__main__":
    main()
