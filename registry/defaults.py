"""`models/default.json`: which model answers a request that names none, when the
registry serves several. `{"model": "sst2-sentiment"}`. Optional: a registry of one
routed model needs no file, and `APP_DEFAULT_MODEL` overrides it."""

from __future__ import annotations

import json
from pathlib import Path

from .manifest import check_safe_name

DEFAULT_FILE = "default.json"


def read_default_model(root: Path) -> str | None:
    """The registry's default model name, or None without a file. ValueError (one line)
    for a file that is not `{"model": "<safe name>"}`."""
    path = Path(root) / DEFAULT_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{DEFAULT_FILE}: not JSON ({exc.msg})") from None
    if not isinstance(data, dict) or not isinstance(data.get("model"), str):
        raise ValueError(f'{DEFAULT_FILE}: expected {{"model": "<name>"}}')
    return check_safe_name(data["model"], "name")


def write_default_model(root: Path, name: str) -> Path:
    path = Path(root) / DEFAULT_FILE
    path.write_text(json.dumps({"model": check_safe_name(name, "name")}, indent=2) + "\n")
    return path
