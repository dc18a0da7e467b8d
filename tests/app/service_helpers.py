"""Helpers shared by the service tests (a plain module: `conftest` is ambiguous when
several test folders have one)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "tests") not in sys.path:
    sys.path.insert(0, str(REPO / "tests"))  # for tiny_models

API_KEY = "test-admin-key-123"
ADMIN = {"Authorization": f"Bearer {API_KEY}"}


def settings_for(root: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"models_dir": root, "api_key": API_KEY, "intra_op_threads": 1}
    values.update(overrides)
    return Settings(**values)


@contextmanager
def serve(root: Path, **overrides: Any) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for(root, **overrides))) as client:
        yield client


def image_command() -> list[str]:
    """The CMD of the Dockerfile, as a list (exec form)."""
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if line.startswith("CMD "):
            return json.loads(line[4:])
    raise AssertionError("Dockerfile has no CMD line")
