"""The cached step: every step keys its output folder by a digest of what it depends on,
reuses a finished result with the same key, and otherwise does its work and records
`result.json` (the digest, the code and library versions, metrics, lineage) beside the
output, so a pipeline re-run reuses finished steps and nothing is guessed.

    def prune_structure(model_dir, out_dir, ..., config):
        key = ({"model": str(model_dir), "weights": checksum_or_none(...)},
               config_fields(config, added_later=("scope",)))
        return run_step("prune-structure", out_dir, key, lambda digest: _prune(...))

`work` receives the digest (training tags its checkpoints with it) and returns the
result's fields; `run_step` adds the bookkeeping and writes the file atomically.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from compression.core.digest import config_digest
from compression.core.files import RESULT_FILE

log = logging.getLogger(__name__)

# Recorded with every step: training numbers move with library versions (the same
# config and seed can give another model), so a result names what made it.
LIBRARIES = ("torch", "transformers", "accelerate", "tokenizers", "onnx", "onnxruntime",
             "numpy")

StepWork = Callable[[str], dict[str, Any]]


def code_version() -> str:
    """The git commit of this code (with '+dirty' when modified), or 'unknown'."""
    root = Path(__file__).resolve().parents[2]
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
    """Write `result.json` atomically (a temporary file renamed over it)."""
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


def run_step(step: str, output_dir: Path, key: Sequence[Any], work: StepWork,
             reuse: bool = True) -> dict[str, Any]:
    """The cached step: `config_digest(*key)`; the finished result with that digest if
    there is one (and `reuse`); else `work(digest)`'s fields recorded in `result.json`."""
    digest = config_digest(*key)
    done = finished_result(output_dir, digest) if reuse else None
    if done:
        log.info("%s: reusing %s (same config)", step, output_dir)
        return done
    return write_result(output_dir, step, digest, **work(digest))
