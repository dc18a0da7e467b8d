"""Publish an ONNX folder as a new registry version with its manifest.

A multi-label model's manifest holds its label setup and a threshold per label: given,
or else those its training step chose on dev (found along the lineage chain)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from compression.core.errors import ConfigError, ModelError
from compression.core.files import ONNX_FILE, RESULT_FILE, TOKENIZER_FILE
from compression.core.steps import code_version
from registry import (
    MANIFEST_FILE,
    QA_TASK,
    Lineage,
    Manifest,
    check_safe_name,
    first_error,
    next_version,
    publish_version,
)


def lineage_chain(onnx_dir: Path) -> list[dict[str, Any]]:
    """The `result.json` of this folder and of every parent it names, newest first. A
    parent that is a registry version ends the chain with its manifest's own steps."""
    chain, seen = [], set()
    folder: Path | None = Path(onnx_dir)
    while folder is not None and folder not in seen:
        seen.add(folder)
        if (folder / MANIFEST_FILE).is_file() and chain:
            chain += Manifest.read(folder).lineage.params.get("steps", [])
            break
        result_file = folder / RESULT_FILE
        if not result_file.is_file():
            result_file = folder.parent / RESULT_FILE  # a step's model/ subfolder
        if not result_file.is_file():
            break
        result = json.loads(result_file.read_text())
        chain.append({k: v for k, v in result.items() if k not in ("labels",)})
        parent = result.get("parent")
        folder = Path(parent) if parent and Path(parent).exists() else None
    return chain


def register(
    onnx_dir: Path,
    registry_root: Path,
    name: str,
    labels: list[str],
    max_length: int,
    metrics: dict[str, float] | None = None,
    version: str | None = None,
    dataset: str | None = None,
    force: bool = False,
    label_setup: str | None = None,
    thresholds: list[float] | None = None,
    task: str | None = None,
    budget: dict[str, Any] | None = None,
) -> Path:
    """Write `onnx_dir` (model.onnx + tokenizer.json) as `registry_root/name/version`.

    `label_setup` ("single-label", "multi-label") and a multi-label model's `thresholds`
    (one per label) default to what the nearest step of the lineage recorded, and so
    does `task` (the data config's `task`, "token-classification"; else the manifest's
    default, "text-classification"). `budget` is the accuracy budget's record (see
    compression/budget.py), kept in the manifest."""
    onnx_dir = Path(onnx_dir)
    for required in (ONNX_FILE, TOKENIZER_FILE):
        if not (onnx_dir / required).is_file():
            raise ModelError(f"{onnx_dir}: no {required}; export (and quantize) first")
    chain = lineage_chain(onnx_dir)
    try:
        check_safe_name(name, "name")  # before next_version() turns it into a path
        setup = _label_setup(chain, label_setup, thresholds)
        task = task or _recorded_task(chain)
        if task is not None:
            setup["task"] = task
        qa = _recorded_qa(chain) if task == QA_TASK else None
        if qa is not None:  # the windows and answer search it was trained and measured with
            setup["qa"] = qa
        if budget is not None:  # how it met the accuracy budget (or that it was forced)
            setup["budget"] = budget
        manifest = _manifest(onnx_dir, registry_root, name, labels, max_length, metrics,
                             version, dataset, chain, setup)
    except ValidationError as exc:
        raise ConfigError(f"register: {first_error(exc)}") from exc
    except ValueError as exc:
        raise ConfigError(f"register: {exc}") from exc
    return publish_version(
        Path(registry_root), manifest,
        {ONNX_FILE: onnx_dir / ONNX_FILE, TOKENIZER_FILE: onnx_dir / TOKENIZER_FILE},
        force=force,
    )


def _label_setup(chain: list[dict[str, Any]], label_setup: str | None,
                 thresholds: list[float] | None) -> dict[str, Any]:
    """The manifest's label_setup and thresholds: as given, else the nearest step's."""
    recorded = next((step for step in chain if step.get("label_setup")), {})
    setup = label_setup or recorded.get("label_setup") or "single-label"
    if setup == "multi-label" and thresholds is None:
        thresholds = recorded.get("thresholds")
        if thresholds is None:
            raise ConfigError("register: a multi-label model needs thresholds, one per "
                              "label: give --thresholds, or register a model whose "
                              "training step chose them on dev")
    return {"label_setup": setup, "thresholds": thresholds}


def _recorded_task(chain: list[dict[str, Any]]) -> str | None:
    """The data config's task of the nearest training step that recorded one."""
    for step in chain:
        data = (step.get("config") or {}).get("data") or {}
        if data.get("task"):
            return str(data["task"])
    return None


def _recorded_qa(chain: list[dict[str, Any]]) -> dict[str, int] | None:
    """A question-answering model's window settings, from the nearest step's data config."""
    for step in chain:
        data = (step.get("config") or {}).get("data") or {}
        if data.get("task") == QA_TASK:
            return {k: int(data[k]) for k in QA_KEYS if k in data}
    return None


QA_KEYS = ("doc_stride", "max_question_length", "max_answer_length", "n_best")


def _manifest(
    onnx_dir: Path, registry_root: Path, name: str, labels: list[str], max_length: int,
    metrics: dict[str, float] | None, version: str | None, dataset: str | None,
    chain: list[dict[str, Any]], setup: dict[str, Any],
) -> Manifest:
    teacher = next((step.get("teacher") for step in chain if step.get("teacher")), None)
    return Manifest(
        name=name,
        version=version or next_version(registry_root, name),
        labels=labels,
        **setup,
        max_length=max_length,
        metrics=metrics or {},
        lineage=Lineage(
            method="+".join(step["step"] for step in reversed(chain)) or "import",
            parent=chain[0].get("parent") if chain else str(onnx_dir),
            teacher=teacher,
            dataset=dataset,
            params={"steps": chain},
            code_version=code_version(),
        ),
    )
