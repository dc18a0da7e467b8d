"""Step bookkeeping: a `result.json` beside each step's output records its config digest,
metrics and lineage, so a pipeline re-run reuses finished steps and nothing is guessed."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

RESULT_FILE = "result.json"
WEIGHTS_FILE = "model.safetensors"
# Recorded with every step: training numbers move with library versions (the same
# config and seed can give another model), so a result names what made it.
LIBRARIES = ("torch", "transformers", "accelerate", "tokenizers", "onnx", "onnxruntime",
             "numpy")


def checksum_or_none(path: Path) -> str | None:
    """sha256 of a step's input file, for reuse keys; None when the file is absent
    (a hub id rather than a folder)."""
    from registry import sha256_file

    return sha256_file(path) if Path(path).is_file() else None


def code_version() -> str:
    """The git commit of this code (with '+dirty' when modified), or 'unknown'."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
            text=True, timeout=5, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
            capture_output=True, text=True, timeout=5,
        ).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries a step's numbers depend on (None: absent)."""
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def finished_result(output_dir: Path, digest: str) -> dict[str, Any] | None:
    """The recorded result if this step already ran to the end with the same config."""
    path = Path(output_dir) / RESULT_FILE
    if not path.is_file():
        return None
    result = json.loads(path.read_text())
    return result if result.get("config_digest") == digest else None


def write_result(output_dir: Path, step: str, digest: str, **fields: Any) -> dict[str, Any]:
    result = {
        "step": step,
        "config_digest": digest,
        "code_version": code_version(),
        "libraries": library_versions(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **fields,
    }
    path = Path(output_dir) / RESULT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2, default=str) + "\n")
    tmp.replace(path)
    return result
