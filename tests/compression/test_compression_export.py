"""PyTorch -> ONNX: outputs match on real tokenized batches, and the step is reusable."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from tiny_models import toy_sentences

from compression.core.errors import ModelError, ParityError
from compression.exporting.onnx_export import INPUT_NAMES, check_parity, export_onnx, onnx_logits
from compression.exporting.steps import ONNX_FILE, TOKENIZER_FILE, export_step
from compression.models.loading import load_classifier
from compression.tasks.encoding import BatchEncoder


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, teacher_dir: Path):  # type: ignore[no-untyped-def]
    model = load_classifier(str(teacher_dir))
    path = export_onnx(model, tmp_path_factory.mktemp("export") / "model.onnx")
    return model, path


def _batches(teacher_dir: Path) -> list[dict[str, np.ndarray]]:
    """Batches of 1, 3 and 17 texts whose lengths differ, so most rows are padded."""
    encoder = BatchEncoder(teacher_dir / TOKENIZER_FILE, max_length=32)
    texts, _ = toy_sentences(21, seed=11)
    texts[5] = "the film was really very good , but the story was not so fun . " * 2
    batches = [encoder(texts[:1]), encoder(texts[1:4]), encoder(texts[4:21])]
    lengths = {b["input_ids"].shape[1] for b in batches}
    assert len(lengths) == 3  # three different sequence lengths
    assert (batches[2]["attention_mask"] == 0).any()  # padding inside a batch
    return batches


def test_exported_graph_has_dynamic_axes(exported) -> None:  # type: ignore[no-untyped-def]
    _, path = exported
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == INPUT_NAMES
    assert [o.name for o in graph.output] == ["logits"]
    for tensor in graph.input:
        dims = tensor.type.tensor_type.shape.dim
        assert [d.dim_param for d in dims] == ["batch", "sequence"]


def test_onnx_matches_pytorch(exported, teacher_dir: Path) -> None:  # type: ignore[no-untyped-def]
    model, path = exported
    batches = _batches(teacher_dir)
    worst = check_parity(model, path, batches, tolerance=1e-4)
    assert 0 <= worst < 1e-4
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in batches:
        logits = onnx_logits(session, batch)
        assert logits.shape == (batch["input_ids"].shape[0], 2)
        with torch.no_grad():
            expected = model(**{k: torch.from_numpy(v) for k, v in batch.items()}).logits
        np.testing.assert_allclose(logits, expected.numpy(), atol=1e-4)


def test_parity_check_fails_loudly(exported, teacher_dir: Path, tiny_encoder: Path) -> None:  # type: ignore[no-untyped-def]
    _, path = exported
    other = load_classifier(str(tiny_encoder))  # same shape, different weights
    with pytest.raises(ParityError, match="tolerance"):
        check_parity(other, path, _batches(teacher_dir), tolerance=1e-3)


def test_export_step_writes_folder_and_reuses_it(tmp_path: Path, teacher_dir: Path,
                                                 dev_texts: list[str]) -> None:
    out = tmp_path / "onnx"
    result = export_step(teacher_dir, out, dev_texts, max_length=32)
    assert {p.name for p in out.iterdir()} == {ONNX_FILE, TOKENIZER_FILE, "result.json"}
    assert result["max_abs_diff"] < 1e-4
    assert result["labels"] == ["negative", "positive"]
    assert result["parent"] == str(teacher_dir)
    assert result["size_bytes"] == (out / ONNX_FILE).stat().st_size
    assert json.loads((out / "result.json").read_text()) == result
    assert (out / TOKENIZER_FILE).read_bytes() == (teacher_dir / TOKENIZER_FILE).read_bytes()

    mtime = (out / ONNX_FILE).stat().st_mtime_ns
    assert export_step(teacher_dir, out, dev_texts, max_length=32) == result
    assert (out / ONNX_FILE).stat().st_mtime_ns == mtime
    # A different config is not "finished": the step runs again.
    again = export_step(teacher_dir, out, dev_texts, max_length=32, tolerance=1e-2)
    assert again["config_digest"] != result["config_digest"]


def test_export_step_needs_a_tokenizer_json(tmp_path: Path, teacher_dir: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(teacher_dir, folder)
    (folder / TOKENIZER_FILE).unlink()
    with pytest.raises(ModelError, match=TOKENIZER_FILE):
        export_step(folder, tmp_path / "onnx", ["good film"], max_length=32)


def test_optimized_export_keeps_parity(tmp_path: Path, teacher_dir: Path,
                                       dev_texts: list[str]) -> None:
    result = export_step(teacher_dir, tmp_path / "opt", dev_texts, max_length=32, optimize=True)
    assert result["optimized"] is True
    assert result["max_abs_diff"] < 1e-3
    ops = [node.op_type for node in onnx.load(str(tmp_path / "opt" / ONNX_FILE)).graph.node]
    assert ops.count("Attention") == 2  # one fused attention per layer
    assert "Softmax" not in ops
