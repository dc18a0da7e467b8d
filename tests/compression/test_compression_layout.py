"""The layout's promises, checked (the import cycles: tests/test_code_shape.py): the
architecture and task seams are the only places that know BERT or the head, and the
unsupported is refused with one line."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import torch
from tiny_models import build_classifier

from compression.core.errors import ConfigError, ModelError
from compression.models.architectures import (
    ADAPTERS,
    adapter_for,
    adapter_for_layer,
    adapter_for_type,
)
from compression.models.loading import load_classifier
from compression.tasks.registry import CLASSIFICATION, task_for

PACKAGE = Path(__file__).resolve().parents[2] / "compression"


def test_no_relative_imports() -> None:
    relative = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                if any(isinstance(n, ast.ImportFrom) and n.level
                       for n in ast.walk(ast.parse(p.read_text())))]
    assert not relative, f"relative imports in {relative}"


def test_only_the_adapters_know_where_an_architecture_keeps_things() -> None:
    """The seam (architectures.py) and the adapters (models/adapters/) are the only
    modules that name an architecture's classes or modules, or test a model type."""
    pattern = re.compile(r"\.(bert|roberta|distilbert|electra|deberta|mpnet)\b"
                         r"|model_type\s*==|Bert(For|Model|Layer)|Roberta(For|Model|Layer)"
                         r"|Electra(For|Model)|DebertaV2(For|Model)|MPNet(For|Model)"
                         r"|attention\.self|\.pooler\b")
    adapters = PACKAGE / "models" / "adapters"
    offenders = [f"{p.relative_to(PACKAGE)}:{i}" for p in PACKAGE.rglob("*.py")
                 if p.name != "architectures.py" and adapters not in p.parents
                 for i, line in enumerate(p.read_text().splitlines(), 1)
                 if pattern.search(line)]
    assert not offenders, offenders


def test_unsupported_model_types_are_refused_with_one_line(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as refused:
        adapter_for_type("gpt2", "some/model")
    message = str(refused.value)
    assert "\n" not in message and "'gpt2'" in message and str(sorted(ADAPTERS)) in message
    with pytest.raises(ModelError, match="not an encoder layer"):
        adapter_for_layer(torch.nn.Linear(2, 2))


def test_the_bert_adapter_finds_a_classifiers_parts(tmp_path: Path) -> None:
    model = load_classifier(str(build_classifier(tmp_path / "model", heads=4)))
    adapter = adapter_for(model)
    assert adapter is ADAPTERS["bert"]
    shape = adapter.shape(model.config)
    layers = adapter.layers(model)
    assert (shape.num_layers, shape.num_heads, shape.hidden_size) == (len(layers), 4, 32)
    assert adapter_for_layer(layers[0]) is adapter
    assert [adapter.heads(layer) for layer in layers] == [4, 4]
    assert adapter.embeddings(model).word_embeddings.weight.shape[0] == shape.vocab_size


def test_tasks_are_found_by_name() -> None:
    assert task_for("sequence-classification") is CLASSIFICATION
    assert task_for("token-classification").name == "token-classification"
    assert task_for("question-answering").name == "question-answering"
    with pytest.raises(ConfigError, match="unknown task"):
        task_for("summarization")
