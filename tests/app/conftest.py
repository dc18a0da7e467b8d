"""Fixtures for the service tests: tiny ONNX models published into a registry once per
session, copied per test so a test can corrupt or re-route its own copy."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from service_helpers import serve  # noqa: E402

from registry import RoutingTable  # noqa: E402


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


@pytest.fixture(scope="session")
def task_registry(base_registry: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The base registry plus ner/1 (a token classifier) and qa/1 (a question answerer),
    random tiny models (no routes)."""
    from tiny_models import publish_tiny_task_version

    from registry import QA_TASK

    root = tmp_path_factory.mktemp("task-registry") / "models"
    shutil.copytree(base_registry, root)
    publish_tiny_task_version(root, "ner", "token-classification", seed=3)
    publish_tiny_task_version(root, "qa", QA_TASK, seed=4)
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


@pytest.fixture
def client(make_registry: Callable[..., Path]) -> Iterator[TestClient]:
    """tiny routed 100 % to version 1 (version 2 loaded at weight 0), other/1 at 100."""
    root = make_registry({"tiny": {"1": 100, "2": 0}, "other": {"1": 100}})
    with serve(root) as c:
        yield c
