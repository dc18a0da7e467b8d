"""The README and docs/ as a newcomer reads them: short enough to read, set-up commands that
are the ones CI runs, quick-start commands the CLI accepts, links that lead somewhere, and
nothing cited that lives outside the repository."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from compression.cli.main import build_parser

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MAX_README_CHARS = 10_000
SERVE = "python3 -m venv .venv && .venv/bin/pip install -e '.[serve]' && .venv/bin/python -m app"
TEST = ("python3 -m venv .venv && .venv/bin/pip install -e '.[compress,serve,dev]' "
        "&& .venv/bin/python -m pytest")


def _shell_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def _commands(block: str) -> list[str]:
    return [line for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def test_the_readme_is_short_and_has_exactly_the_two_set_up_commands() -> None:
    text = README.read_text()
    assert len(text) <= MAX_README_CHARS, len(text)
    setups = [c for b in _shell_blocks(text) for c in _commands(b) if "pip install" in c]
    assert setups == [SERVE, TEST]
    assert TEST.replace("python3 -m venv .venv && ", "") in (ROOT / ".ci" / "run").read_text()


def _compression_commands(document: Path) -> list[list[str]]:
    commands = [shlex.split(c) for b in _shell_blocks(document.read_text()) for c in _commands(b)]
    return [c[c.index("compression") + 1:] for c in commands if "-m" in c and "compression" in c]


def test_the_quick_start_commands_parse() -> None:
    readme = _compression_commands(README)
    assert readme[0][0] == "auto"  # a user's own data: one command
    steps = readme + _compression_commands(ROOT / "docs" / "compression.md")
    assert len(steps) >= 7
    parser = build_parser()
    for argv in steps:
        parser.parse_args(argv)  # exits (SystemExit) on an unknown command or flag


def _documents() -> list[Path]:
    return [README, *sorted((ROOT / "docs").rglob("*.md")), ROOT / "docker" / "README.md"]


@pytest.mark.parametrize("document", _documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_lead_to_files(document: Path) -> None:
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", document.read_text())
    broken = [link for link in links if "://" not in link
              and not (document.parent / link).exists()]
    assert not broken, broken


def test_nothing_in_the_repository_cites_a_file_outside_it() -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout")
    offenders = [name for name in tracked if name != "tests/test_docs.py"
                 and (ROOT / name).is_file() and (ROOT / name).suffix in {".py", ".md", ".yaml",
                                                                          ".yml", ".toml"}
                 and "FACTS.md" in (ROOT / name).read_text(errors="replace")]
    assert not offenders, offenders
