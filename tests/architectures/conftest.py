"""Fixtures for the architecture tests: the toy task and the per-model-type chain of
`arch_chain.Chain`, built once per session with no network."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from arch_chain import Chain  # noqa: E402
from tiny_models import toy_sentences  # noqa: E402


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    import torch

    torch.set_num_threads(1)
    yield
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    return Chain(tmp_path_factory.mktemp("architectures"))


@pytest.fixture(scope="session")
def texts() -> dict[str, list[str]]:
    """The toy task's sentences: train (kept by vocabulary pruning) and dev."""
    return {"train": toy_sentences(240, seed=1)[0], "dev": toy_sentences(64, seed=2)[0]}
