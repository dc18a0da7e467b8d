"""What a model was trained for, read back by the standalone commands (`export`,
`quantize`, `float-outputs`, `evaluate`, `register`), so that they treat a question
answerer or a token classifier the way `pipeline` does: its data file in its own layout
(SQuAD JSON, CoNLL/JSONL) and, for question answering, its inputs cut into the windows
it was trained with (each window flag given, else as recorded, else the default).

The task comes from the model itself: a PyTorch folder's head, a registry version's
manifest, else the data config its lineage (`result.json` chain) recorded.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from compression.cli.arguments import QA_FIELDS, default, given, texts
from compression.config.steps import DataConfig
from compression.core.conll import load_token_split
from compression.core.errors import ConfigError
from compression.core.squad import load_squad_split
from compression.register import lineage_chain
from compression.tasks.classification import SequenceClassification
from compression.tasks.registry import CLASSIFICATION, QUESTION_ANSWERING, TOKEN_CLASSIFICATION
from inference.qa import WindowSettings
from registry import MANIFEST_FILE, QA_TASK, Manifest

TOKEN_TASK = TOKEN_CLASSIFICATION.name
# A head's class name ends with these (config.json's `architectures`).
HEADS = {"ForQuestionAnswering": QA_TASK, "ForTokenClassification": TOKEN_TASK}


@dataclass(frozen=True)
class ModelTask:
    """The task a command checks a model with, and the token length it encodes at."""

    task: SequenceClassification
    max_length: int

    @property
    def name(self) -> str | None:
        """The data config's task name (None: a label per text)."""
        return self.task.name if self.task.name in (QA_TASK, TOKEN_TASK) else None

    def texts(self, path: str, args: argparse.Namespace, limit: int | None = None) -> list[str]:
        """The inputs of a data file in the task's layout (a question and its context
        for question answering)."""
        if self.name == QA_TASK:
            return list(load_squad_split(path, limit).texts)
        if self.name == TOKEN_TASK:
            return load_token_split(path, getattr(args, "format", None), limit).texts
        return texts(path, args, limit)


def _folder(model: Path) -> Path:
    return model.parent if model.suffix == ".onnx" else model


def _recorded_data(model: Path) -> dict[str, Any]:
    """The data settings `model` was trained and measured with: a registry version's
    manifest, else the nearest data config along its lineage."""
    if (model / MANIFEST_FILE).is_file():
        manifest = Manifest.read(model)
        return {"task": manifest.task, "max_length": manifest.max_length,
                **(manifest.qa.model_dump() if manifest.qa else {})}
    for step in lineage_chain(model):
        data = (step.get("config") or {}).get("data")
        if data:
            return dict(data)
    return {}


def task_name(model: Path) -> str | None:
    """question-answering, token-classification, or None (a label per text)."""
    folder = _folder(Path(model))
    config = folder / "config.json"
    if config.is_file() and not (folder / MANIFEST_FILE).is_file():  # a PyTorch folder
        architectures = json.loads(config.read_text()).get("architectures") or []
        return next((task for suffix, task in HEADS.items()
                     if any(a.endswith(suffix) for a in architectures)), None)
    task = _recorded_data(folder).get("task")
    return task if task in (QA_TASK, TOKEN_TASK) else None


def model_task(model: Path, args: argparse.Namespace, name: str | None = None) -> ModelTask:
    """The task of `model` (or `name`, when told) with the encoding its checks use:
    `--max-length` and a question answerer's window flags as given, else as recorded,
    else the defaults."""
    folder = _folder(Path(model))
    name = name or task_name(folder)
    recorded = _recorded_data(folder) if name == QA_TASK else {}

    def setting(field: str) -> Any:
        value = getattr(args, field, None)
        if given(value) or (value is not None and field not in recorded):
            return value
        return recorded.get(field, default(DataConfig, field))

    max_length = int(setting("max_length"))
    if name == TOKEN_TASK:
        return ModelTask(TOKEN_CLASSIFICATION, max_length)
    if name != QA_TASK:
        return ModelTask(CLASSIFICATION, max_length)
    doc_stride, question, answer, n_best = (int(setting(f)) for f in QA_FIELDS)
    try:
        settings = WindowSettings(max_length, doc_stride, question, answer, n_best)
    except ValueError as exc:
        raise ConfigError(f"{model}: question-answering windows: {exc}") from exc
    return ModelTask(replace(QUESTION_ANSWERING, settings=settings), max_length)


__all__ = ["HEADS", "ModelTask", "TOKEN_TASK", "model_task", "task_name"]
