"""docs/cli.md, written from the parser itself so that it cannot drift:
`python -m compression.cli.docs > docs/cli.md` (a test checks the file is current)."""

from __future__ import annotations

import argparse
import re
import sys

from compression.cli.main import DESCRIPTION, build_parser

HEADER = """# Command line

`python -m compression COMMAND [options]`. Generated from the parser by
`python -m compression.cli.docs > docs/cli.md`; defaults come from the config
dataclasses (docs/config.md). Every command prints one summary line, or one `error:`
line and exits with status 2 on a mistake it can name.

"""


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _row(action: argparse.Action) -> str:
    name = ", ".join(f"`{s}`" for s in action.option_strings) or f"`{action.dest}`"
    if action.option_strings and action.nargs != 0:
        name += f" {action.metavar or action.dest.upper()}"
    if action.required or not action.option_strings:
        default = "required"
    elif action.nargs == 0:
        default = "off"
    else:
        default = "" if action.default in (None, "", []) else f"`{action.default}`"
    choices = ", ".join(f"`{c}`" for c in action.choices) if action.choices else ""
    # The default has its own column: drop the help's "(default: ...)".
    description = re.sub(r"\s*\(default: %\(default\)s\)", "", action.help or "")
    description = description.replace("%(default)s", str(action.default))
    return f"| {_cell(name)} | {_cell(default)} | {_cell(choices)} | {_cell(description)} |"


def _command(name: str, parser: argparse.ArgumentParser, summary: str) -> list[str]:
    lines = [f"## `{name}`", "", f"{summary[:1].upper()}{summary[1:]}.", ""]
    if parser.description:
        lines += [parser.description, ""]
    lines += ["| argument | default | choices | meaning |", "| --- | --- | --- | --- |"]
    lines += [_row(a) for a in parser._actions if not isinstance(a, argparse._HelpAction)]
    return [*lines, ""]


def render() -> str:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    summaries = {c.dest: c.help for c in commands._choices_actions}
    lines = [HEADER.rstrip(), "", "```text", DESCRIPTION.rstrip(), "```", "",
             "Global option: `-v`, `--verbose` (debug logging).", ""]
    lines += [f"- [`{name}`](#{name}): {summaries[name]}" for name in commands.choices]
    lines.append("")
    for name, sub in commands.choices.items():
        lines += _command(name, sub, summaries[name] or "")
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
