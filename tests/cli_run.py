"""Run `python -m compression` in-process and capture what it printed."""

from __future__ import annotations

import pytest

from compression.cli.main import main


def run_cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of one command line."""
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err
