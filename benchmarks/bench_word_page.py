"""Size and speed of a word model's report page (docs/views-and-report.md, "A word model's page").

For each size, a random 2-layer LSTM over 10,002 tokens (a vocabulary of 10,000 made-up words, the
size ``--vocab-size 10000`` gives; the page's size and speed do not depend on training) is written
as a checkpoint, then ``charlm report --json`` writes its page (float16 weights, the default) over
a text of 120 of those words. Then headless Chromium, driven by the tests' DevTools harness
(``tests/test_report.py``: Debian's ``chromium`` and websocket-client), opens the page: the time
from navigation to the load event, then the page's sampler drawing ``--tokens`` tokens at
temperature 0.8 (tokens/s). Medians of ``--repeats`` rounds, each page opened in a new tab.

    PYTHONPATH=.:tests python benchmarks/bench_word_page.py [--sizes 256,512] [--tokens 200]
        [--repeats 3]

Run it on a quiet machine: the figures are wall time.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from test_report import Browser, Tab, chromium, draw_in_page  # noqa: E402
from tiny_models import make_word_model, save_model  # noqa: E402


def made_up_words(count, seed=0):
    rng = np.random.default_rng(seed)
    letters = list("abcdefghijklmnopqrstuvwxyz")
    found = set()
    while len(found) < count:
        found.add("".join(rng.choice(letters, int(rng.integers(4, 10)))))
    return sorted(found)


def timed_open(browser, path):
    """(Tab, its target id, seconds from navigation to the load event) of path in a new tab."""
    target = browser.send("Target.createTarget", url="about:blank")["targetId"]
    session = browser.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    for domain in ("Page", "Runtime"):
        browser.send(f"{domain}.enable", session)
    start = time.perf_counter()
    browser.send("Page.navigate", session, url=Path(path).resolve().as_uri())
    browser.wait_for("Page.loadEventFired", session)
    seconds = time.perf_counter() - start
    return Tab(browser, session, Path(path).resolve().as_uri()), target, seconds


def measure(folder, hidden, words, args, browser):
    corpus = " ".join(words) + ".\n"
    model = make_word_model(corpus, hidden=hidden, layers=2)
    path = save_model(model, folder / f"w{hidden}.npz")
    text = folder / "text.txt"
    text.write_text(" ".join(words[:120]) + ".\n", encoding="utf-8")
    page = folder / f"w{hidden}.html"
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "charlm", "report", "--model", str(path), "-o",
                           str(page), "--text", str(text), "--json", "--force"],
                          capture_output=True, text=True, check=True)
    written = time.perf_counter() - start
    loads, rates = [], []
    for _ in range(args.repeats):
        tab, target, seconds = timed_open(browser, page)
        loads.append(seconds)
        start = time.perf_counter()
        draw_in_page(tab, seed=1, temperature=0.8, length=args.tokens)
        rates.append(args.tokens / (time.perf_counter() - start))
        browser.send("Target.closeTarget", targetId=target)
    parameters = int(model.network.params.flat.size)
    return (f"| LSTM 2x{hidden} ({parameters:,} parameters) | "
            f"{json.loads(done.stdout)['bytes'] / 1e6:.1f} MB | {written:.0f} s | "
            f"{statistics.median(loads):.1f} s | {statistics.median(rates):.0f} tokens/s |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256,512")
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    words = made_up_words(10_000)
    browser = Browser(chromium())
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for hidden in (int(h) for h in args.sizes.split(",")):
                rows.append(measure(Path(tmp), hidden, words, args, browser))
    finally:
        browser.close()
    print("| model (10,002 tokens) | page | `charlm report` | load in headless Chromium | "
          "its sampler |")
    print("| --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    print(f"\nload average {os.getloadavg()[0]:.2f}; medians of {args.repeats}, "
          f"{args.tokens} tokens at temperature 0.8")


if __name__ == "__main__":
    main()
