"""Fixtures for the service tests: tiny ONNX models published into a registry once per
session, copied per test so a test can corrupt or re-route its own copy."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from fastapi.testclient import TestClient  # noqa: E402

from app.main import create_app  # noqa: E402
from app.settings import Settings  # noqa: E402
from registry import RoutingTable  # noqa: E402

API_KEY = "test-admin-key-123"
ADMIN = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="session")
def base_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny/1 and tiny/2 (two labels, different seeds) and other/1 (three labels)."""
    from tiny_models import publish_tiny_version

    root = tmp_path_factory.mktemp("registry") / "models"
    root.mkdir()
    publish_tiny_version(root, "tiny", "1", seed=0)
    publish_tiny_version(root, "tiny", "2", seed=1)
    publish_tiny_version(root, "other", "1", labels=("neg", "neutral", "pos"), seed=2)
    return root


@pytest.fixture
def make_registry(base_registry: Path, tmp_path: Path) -> Callable[..., Path]:
    """A private copy of the registry with the given routes (None: no routes.json)."""

    def make(routes: dict[str, dict[str, float]] | None = None) -> Path:
        root = tmp_path / "models"
        if root.exists():
            shutil.rmtree(root)
        shutil.copytree(base_registry, root)
        if routes is not None:
            RoutingTable(routes=routes).write(root)
        return root

    return make


def settings_for(root: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"models_dir": root, "api_key": API_KEY, "intra_op_threads": 1}
    values.update(overrides)
    return Settings(**values)


@contextmanager
def serve(root: Path, **overrides: Any) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for(root, **overrides))) as client:
        yield client


@pytest.fixture
def client(make_registry: Callable[..., Path]) -> Iterator[TestClient]:
    """tiny routed 100 % to version 1 (version 2 loaded at weight 0), other/1 at 100."""
    root = make_registry({"tiny": {"1": 100, "2": 0}, "other": {"1": 100}})
    with serve(root) as c:
        yield c
