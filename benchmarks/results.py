"""Where the benchmarks' tables go: ``benchmarks/results/NAME.md``, each with a line that says when,
how and on what it was measured. ``update_readme.py`` copies them into ``docs/results.md``, the
other pages of ``docs/`` that discuss them and the README's headline table, so that every figure
there is one a benchmark printed."""
import datetime
import os
import platform
import shlex
import sys
from importlib import metadata
from pathlib import Path

FOLDER = Path(__file__).resolve().parent / "results"
PACKAGES = ("numpy", "numba", "scipy", "torch")


def provenance(loads):
    """One line: the date, the command, the load average seen (min, max), the package versions."""
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    command = "python " + shlex.join(["benchmarks/" + Path(sys.argv[0]).name] + sys.argv[1:])
    return (f"Measured {datetime.date.today().isoformat()} with `{command}` on {os.cpu_count()} "
            f"cores ({platform.machine()}), load average {min(loads):.1f} to {max(loads):.1f}; "
            f"{', '.join(versions)}.")


def save(name, table, loads):
    """Write a markdown table and its provenance line to results/NAME.md; returns the path."""
    FOLDER.mkdir(exist_ok=True)
    path = FOLDER / f"{name}.md"
    path.write_text(table.rstrip("\n") + "\n\n" + provenance(loads) + "\n")
    return path
