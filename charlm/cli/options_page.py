"""The options page, ``docs/options.md``, written from the click commands themselves: every command,
its arguments, and every option with its default and help, as ``charlm COMMAND --help`` shows them.

    python -m charlm.cli.options_page > docs/options.md

``tests/test_docs.py`` fails when the committed page differs from a fresh one, so the page and
``--help`` cannot drift apart. The text of each help is click's own help record (not wrapped, so
the page does not depend on the terminal's width); a default is the ``[default: ...]`` at its end.
"""
import re

import click

HEADER = """\
# Options

Every command of `charlm`, every option with its default, as `charlm COMMAND --help` prints them.
This page is generated from the commands themselves: after changing an option, run
`python -m charlm.cli.options_page > docs/options.md` (`tests/test_docs.py` fails until the page
matches). Settings that a checkpoint records take their defaults from `charlm.config.Config`; a
default given in words (for example "sized to the corpus") is chosen when training starts, and
`charlm train` says what it chose. Every command also takes `-h`/`--help`, and `charlm --version`
prints the version.
"""

_EXTRAS = re.compile(r"\s*\[(?P<extras>[^\[\]]*)\]$")


def split_help(text):
    """'Help.  [default: X]' -> ('Help.', 'X'); click's '[default: X; required]' -> ('Help.', 'X')."""
    match = _EXTRAS.search(text)
    if not match or not match["extras"].startswith(("default: ", "required")):
        return text.strip(), None
    extras = match["extras"]
    if extras.endswith("; required"):
        extras = extras[: -len("; required")]
    default = extras[len("default: "):] if extras.startswith("default: ") else None
    return text[: match.start()].strip(), default


def markdown(text):
    """Text for markdown: outside `code`, angle brackets (`<EOS>`) and emphasis marks escaped."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):
        parts[i] = (parts[i].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
                    .replace("*", r"\*").replace("_", r"\_"))
    return "`".join(parts)


def paragraphs(text):
    """A click docstring as markdown: click's no-rewrap marker (\\b) starts a code block."""
    out = []
    for block in (text or "").strip().split("\n\n"):
        lines = block.strip("\n").splitlines()
        if lines and lines[0].strip() == "\b":
            body = "\n".join(line[2:] if line.startswith("  ") else line for line in lines[1:])
            out.append("```\n" + body.rstrip() + "\n```")
        else:
            out.append(markdown(" ".join(line.strip() for line in lines)))
    return [p for p in out if p.strip()]


def describe(command, name, parent):
    """The markdown section of one command."""
    ctx = command.make_context(name, [], parent=parent, resilient_parsing=True)
    help_option = command.get_help_option(ctx)
    lines = [f"## charlm {name}", "", "```", " ".join(command.collect_usage_pieces(ctx)).join(
        [f"charlm {name} ", ""]), "```", ""]
    for paragraph in paragraphs(command.help):
        lines += [paragraph, ""]
    arguments = [p for p in command.params if isinstance(p, click.Argument)]
    if arguments:
        lines += ["Arguments: " + ", ".join(
            f"`{p.make_metavar(ctx)}`" + (" (any number)" if p.nargs == -1 else
                                          " (optional)" if not p.required else "") for p in arguments)
            + ".", ""]
    for param in command.get_params(ctx):
        if not isinstance(param, click.Option):
            continue
        record = param.get_help_record(ctx)
        if record is None or param is help_option:
            continue
        names, text = record
        help_text, default = split_help(text)
        entry = f"- `{names}`"
        if default is not None:
            entry += f" (default: `{default}`)"
        if help_text:
            entry += ": " + markdown(help_text)
        lines.append(entry)
    lines.append("")
    for paragraph in paragraphs(command.epilog):
        lines += [paragraph, ""]
    return lines


def page():
    """The whole page, one section per command."""
    from . import main
    root = main.make_context("charlm", [], resilient_parsing=True)
    lines = [HEADER]
    names = list(main.commands)      # the order of registration: training first, views last
    lines.append("Commands: " + ", ".join(f"[{n}](#charlm-{n})" for n in names) + ".")
    lines.append("")
    for name in names:
        lines += describe(main.get_command(root, name), name, root)
    return "\n".join(lines).rstrip("\n") + "\n"


if __name__ == "__main__":
    click.echo(page(), nl=False)
