"""Copy the benchmarks' saved tables (``benchmarks/results/NAME.md``) into README.md, between the
markers ``<!-- results: NAME -->`` and ``<!-- /results -->``.

    python benchmarks/update_readme.py [--check]

``--check`` changes nothing and exits 1 if the README differs from the saved tables.
"""
import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"(<!-- results: (?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- /results -->)", re.S)


def updated(readme, folder):
    def replace(match):
        path = folder / f"{match['name']}.md"
        if not path.exists():
            sys.exit(f"README.md shows results '{match['name']}' but {path} does not exist: run the "
                     "benchmark that saves it")
        return match.group(1) + path.read_text() + match.group(4)
    return BLOCK.sub(replace, readme)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the README is out of date")
    args = parser.parse_args()
    path = ROOT / "README.md"
    readme = path.read_text()
    new = updated(readme, ROOT / "benchmarks" / "results")
    if args.check:
        sys.exit(0 if new == readme else "README.md is out of date: run benchmarks/update_readme.py")
    path.write_text(new)


if __name__ == "__main__":
    main()
