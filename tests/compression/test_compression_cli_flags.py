"""The command line is a public interface: every command and flag of the CLI before the
restructure of issue #21 (`fixtures/cli_before_restructure.json`, dumped from the parser at
commit cb03ac2) still exists, with the same destination, default, choices, type, arity
and requiredness, and still parses."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from compression.cli.main import build_parser

BEFORE: dict[str, Any] = json.loads(
    (Path(__file__).parent / "fixtures" / "cli_before_restructure.json").read_text())
COMMANDS = sorted(c for c in BEFORE if c != "global")
# Flags whose type accepts more than it did (every old value still parses, to the same
# meaning): flag -> (the type before, the type now).
WIDENED = {"--epochs": ("float", "epochs_value")}  # also `auto` (issue 27)


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _type_name(action: argparse.Action) -> str | None:
    """The argument's type as the fixture names it (a widened type by its old name)."""
    name = getattr(action.type, "__name__", None)
    before, now = WIDENED.get(action.option_strings[0] if action.option_strings else "",
                              (None, None))
    return before if name is not None and name == now else name


def _describe(action: argparse.Action) -> dict[str, Any]:
    """What the fixture recorded of an argument (JSON-normalised like the fixture)."""
    return json.loads(json.dumps({
        "options": action.option_strings, "dest": action.dest, "default": action.default,
        "choices": list(action.choices) if action.choices else None, "nargs": action.nargs,
        "required": action.required, "type": _type_name(action),
        "action": type(action).__name__}, default=str))


def _actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {(a.option_strings[0] if a.option_strings else a.dest): a
            for a in parser._actions if not isinstance(a, argparse._HelpAction)}


def test_no_command_disappeared() -> None:
    parser = build_parser()
    assert set(COMMANDS) <= set(_subparsers(parser))
    assert set(BEFORE["global"]) <= {s for a in parser._actions for s in a.option_strings}


@pytest.mark.parametrize("command", COMMANDS)
def test_every_flag_keeps_its_meaning(command: str) -> None:
    actions = _actions(_subparsers(build_parser())[command])
    for flag, before in BEFORE[command].items():
        assert flag in actions, f"{command} {flag} disappeared"
        now = _describe(actions[flag])
        # A required flag may become optional (every old command line still parses: --dev
        # gave way to --dev-fraction); an optional one never becomes required.
        assert now["required"] in (False, before["required"]), f"{command} {flag} required"
        assert {**now, "required": before["required"]} == before, f"{command} {flag} changed"


def _sample(action: argparse.Action) -> list[str]:
    """A value the argument accepts, as command-line words."""
    if action.nargs == 0:
        return []
    if action.choices:
        return [str(list(action.choices)[-1])]
    kind = _type_name(action)
    return ["3"] if kind == "int" else ["0.25"] if kind == "float" else ["some-value"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_flag_still_parses(command: str) -> None:
    parser = build_parser()
    actions = _actions(_subparsers(parser)[command])
    required: list[str] = []
    for key, action in actions.items():
        if not action.option_strings:
            required += _sample(action)
        elif action.required:
            required += [key, *_sample(action)]
    for flag in BEFORE[command]:
        action = actions[flag]
        if not action.option_strings or action.required:
            continue  # already in `required`
        words = _sample(action)
        args = parser.parse_args([command, *required, flag, *words])
        value = getattr(args, action.dest)
        expected: Any = (True if isinstance(action, argparse._StoreTrueAction)
                         else action.type(words[0]) if action.type else words[0])
        if isinstance(action, argparse._AppendAction):
            expected = [words[0]]
        assert value == expected, f"{command} {flag} {words} parsed as {value!r}"
