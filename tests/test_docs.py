"""The documentation holds to the code: the options page is a fresh generation from the click
commands, every default `--help` states for a setting of a run is Config's, every relative link of
the README and docs/ leads to a file (and heading) that exists, the results pages hold the saved
benchmark tables, and .ci/run runs the README's set-up commands."""
import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from charlm.cli import main
from charlm.cli.options_page import split_help
from charlm.config import Config

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\((?P<target>[^)\s]+)\)")


def test_options_page_is_a_fresh_generation():
    fresh = subprocess.run([sys.executable, "-m", "charlm.cli.options_page"], capture_output=True,
                           text=True, check=True).stdout
    committed = (ROOT / "docs" / "options.md").read_text()
    assert committed == fresh, ("docs/options.md differs from the click commands: run "
                                "python -m charlm.cli.options_page > docs/options.md")


def test_options_page_lists_every_option_of_every_command():
    page = (ROOT / "docs" / "options.md").read_text()
    for name, command in main.commands.items():
        assert f"## charlm {name}\n" in page
        for param in command.params:
            if isinstance(param, click.Option):
                assert f"`{param.opts[0]}" in page, (name, param.opts)


def help_defaults(command_name):
    """{parameter name: the default its --help states} for one command."""
    root = main.make_context("charlm", [], resilient_parsing=True)
    command = main.commands[command_name]
    ctx = command.make_context(command_name, [], parent=root, resilient_parsing=True)
    stated = {}
    for param in command.params:
        if isinstance(param, click.Option):
            record = param.get_help_record(ctx)
            stated[param.name] = split_help(record[1])[1] if record else None
    return stated


def as_number(text):
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


SETTINGS = {f.name: f.default for f in dataclasses.fields(Config)}


@pytest.mark.parametrize("command_name, parameter, setting", [
    *[("train", p.name, p.name) for p in main.commands["train"].params if p.name in SETTINGS],
    ("prepare", "mode", "mode"),          # the same --mode, decided the same way
    ("gradients", "seed", "seed"),        # --cell's weights start as `charlm train --seed` starts them
])
def test_help_states_configs_default(command_name, parameter, setting):
    stated = help_defaults(command_name)
    default, text = SETTINGS[setting], stated[parameter]
    if default is None:
        # chosen when training starts: the help says how, in words, never as a number
        assert text is None or as_number(text) is None, (parameter, text)
    elif isinstance(default, bool):
        assert text is None or text == str(default), (parameter, text)     # a flag: off unless given
    elif isinstance(default, str):
        assert text == str(default), (parameter, text, default)
    else:
        assert text is not None and as_number(text) == default, (parameter, text, default)


def test_help_default_is_the_one_click_applies():
    """An option that states its default and has one of its own (show_default) states that one."""
    root = main.make_context("charlm", [], resilient_parsing=True)
    for name, command in main.commands.items():
        ctx = command.make_context(name, [], parent=root, resilient_parsing=True)
        for param in command.params:
            if isinstance(param, click.Option) and param.show_default and param.default is not None \
                    and not param.is_flag:
                stated = split_help(param.get_help_record(ctx)[1])[1]
                assert stated == str(param.default), (name, param.name, stated, param.default)


def slug(heading):
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path):
    seen, found, fenced = {}, set(), False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if fenced or not line.startswith("#"):
            continue
        base = slug(line.lstrip("#"))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path):
    text, fenced, out = path.read_text(), False, []
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            out += [m["target"] for m in LINK.finditer(re.sub(r"`[^`]*`", "", line))]
    return out


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_lead_to_files_and_headings(page):
    for target in links(page):
        if re.match(r"^[a-z]+:", target):
            continue                                   # http:, https:, mailto:
        file_part, _, anchor = target.partition("#")
        linked = (page.parent / file_part).resolve() if file_part else page
        assert linked.exists(), f"{page.name}: {target} leads to no file"
        if anchor and linked.suffix == ".md":
            assert anchor in anchors(linked), f"{page.name}: {target} leads to no heading"


def test_readme_is_a_front_door():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    for name in main.commands:                 # its tour names every command
        assert f"`charlm {name}`" in readme, name


def test_results_pages_hold_the_saved_tables():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "update_readme.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_ci_runs_the_readmes_set_up_commands_in_order():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Set up", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    readme_commands = [line for block in blocks for line in block.splitlines()
                       if line.strip() and not line.startswith("#")]
    ci = (ROOT / ".ci" / "run").read_text()
    ci_commands = re.findall(r"^\((.*)\)$", ci, re.M)
    assert ci_commands == readme_commands
