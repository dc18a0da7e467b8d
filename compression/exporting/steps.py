"""Steps that turn a PyTorch classifier into servable ONNX folders.

An ONNX folder holds `model.onnx`, `tokenizer.json` and `result.json` (what made it).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from torch import nn

from compression.config.steps import QuantConfig
from compression.core.digest import optional, text_digest
from compression.core.errors import ModelError
from compression.core.files import ONNX_FILE, TOKENIZER_FILE, WEIGHTS_FILE, checksum_or_none
from compression.core.steps import run_step
from compression.evaluation.runners import OnnxRunner
from compression.exporting.onnx_export import check_parity, export_onnx, optimize_onnx
from compression.models.architectures import adapter_for
from compression.models.loading import labels_of, load_classifier
from compression.models.outputs import is_per_token, is_question_answerer
from compression.quantization.post_training import FLOAT_OUTPUTS_LAYOUT, quantize_onnx
from compression.quantization.qdq_graph import int8_inside_matmuls_only
from compression.tasks.classification import SequenceClassification
from compression.tasks.encoding import BatchEncoder
from compression.tasks.registry import CLASSIFICATION
from registry import sha256_file

log = logging.getLogger(__name__)

__all__ = ["ONNX_FILE", "TOKENIZER_FILE", "batch1_agreement", "export_step",
           "float_outputs_step", "quantize_step"]


def _batches(encoder: BatchEncoder, texts: list[str], size: int) -> list[dict[str, np.ndarray]]:
    return [encoder(texts[i : i + size]) for i in range(0, len(texts), size)]


def _attention_shape(model: nn.Module) -> tuple[int, int]:
    """Heads and q/k/v width for the optimizer's attention fusion: a pruned model's are
    narrower than `hidden_size` (0, 0 = let the optimizer read them off the graph)."""
    adapter = adapter_for(model)
    shapes = {(adapter.heads(layer), adapter.attention_width(layer))
              for layer in adapter.layers(model)}
    if len(shapes) != 1:
        log.warning("export: layers have different head counts %s; attention is not fused",
                    sorted(shapes))
        return 0, 0
    return shapes.pop()


def export_step(
    model_dir: Path,
    out_dir: Path,
    check_texts: list[str],
    max_length: int,
    optimize: bool = False,
    tolerance: float = 1e-3,
    task: SequenceClassification = CLASSIFICATION,
) -> dict[str, Any]:
    """Export a classifier folder to `out_dir/model.onnx` and check parity on real texts,
    encoded as `task` reads them (a question answerer: windows of question and context)."""
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    # The weights' checksum, not just their path: a retrained model must be re-exported.
    key = ({"model": str(model_dir), "optimize": optimize, "tolerance": tolerance,
            "max_length": max_length, "weights": checksum_or_none(model_dir / WEIGHTS_FILE)},)
    return run_step("export", out_dir, key, lambda _digest: _export(
        model_dir, out_dir, check_texts, max_length, optimize, tolerance, task))


def _export(model_dir: Path, out_dir: Path, check_texts: list[str], max_length: int,
            optimize: bool, tolerance: float, task: SequenceClassification) -> dict[str, Any]:
    tokenizer_file = model_dir / TOKENIZER_FILE
    if not tokenizer_file.is_file():
        raise ModelError(f"{model_dir}: no {TOKENIZER_FILE} to ship with the ONNX model")
    model = load_classifier(str(model_dir))
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / ONNX_FILE
    export_onnx(model, onnx_path)
    outputs = output_axes(onnx_path, model)  # before the optimizer rewrites the graph
    if optimize:
        heads, width = _attention_shape(model)
        optimize_onnx(onnx_path, onnx_path, heads, width,
                      adapter_for(model).optimizer_model_type)
    shutil.copyfile(tokenizer_file, out_dir / TOKENIZER_FILE)
    encoder = task.batch_encoder(out_dir / TOKENIZER_FILE, max_length)
    worst = check_parity(model, onnx_path, _batches(encoder, check_texts, 32), tolerance)
    log.info("export: max |onnx - torch| = %.2e over %d texts", worst, len(check_texts))
    return dict(model_path=str(onnx_path), parent=str(model_dir), labels=labels_of(model),
                max_abs_diff=worst, optimized=optimize, size_bytes=onnx_path.stat().st_size,
                outputs=outputs)


def output_axes(onnx_path: Path, model: nn.Module) -> dict[str, list[str | int]]:
    """The graph's outputs and their axes, checked against the head: one `logits`,
    (batch, n_labels), or per token (batch, sequence, n) where a question answerer's n
    is 2, its start and end logits. ModelError on any other layout."""
    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    found = {o.name: [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim]
             for o in graph.output}
    width = 2 if is_question_answerer(model) else len(labels_of(model))
    wanted = ["batch", "sequence", width] if is_per_token(model) else ["batch", width]
    if found != {"logits": wanted}:
        raise ModelError(f"{onnx_path}: outputs {found}; the head needs logits {wanted}")
    return found


def batch1_agreement(reference: Path, candidate: Path, encoder: BatchEncoder,
                     texts: list[str], task: SequenceClassification = CLASSIFICATION) -> float:
    """Share of `texts` on which two ONNX models give the same answer, one text at a
    time: agreement as a service answering single requests sees it. The answer is the
    task's: a multi-label model's set of labels (at 0.5), not its top label."""
    first, second = OnnxRunner(reference, 2), OnnxRunner(candidate, 2)
    answers = task.answers
    # A token classifier's answer is a row of tags: it agrees when every tag does.
    # A question's answer is a (start, end) pair per window: it agrees when all do.
    same = [int(np.array_equal(answers(first.logits(b)), answers(second.logits(b))))
            for b in (encoder([t]) for t in texts)]
    return float(np.mean(same))


def quantize_step(
    onnx_dir: Path,
    out_dir: Path,
    config: QuantConfig,
    calibration_texts: list[str],
    check_texts: list[str],
    max_length: int,
    task: SequenceClassification = CLASSIFICATION,
) -> dict[str, Any]:
    """Quantize `onnx_dir/model.onnx` into `out_dir`; report size and agreement (in
    `task`'s answers)."""
    onnx_dir, out_dir = Path(onnx_dir), Path(out_dir)
    source = onnx_dir / ONNX_FILE
    if not source.is_file():
        raise ModelError(f"{onnx_dir}: no {ONNX_FILE}; run `export` first")
    key = ({"source": str(onnx_dir), "source_sha256": sha256_file(source),
            "max_length": max_length, "calibration": text_digest(calibration_texts),
            "layout": optional(FLOAT_OUTPUTS_LAYOUT if config.float_outputs else None)},
           config)
    return run_step("quantize", out_dir, key, lambda _digest: _quantize(
        onnx_dir, out_dir, config, calibration_texts, check_texts, max_length, task))


def _quantize(onnx_dir: Path, out_dir: Path, config: QuantConfig,
              calibration_texts: list[str], check_texts: list[str],
              max_length: int, task: SequenceClassification) -> dict[str, Any]:
    source = onnx_dir / ONNX_FILE
    # The task's encoder: a question-answering model calibrates on its windows.
    encoder = task.batch_encoder(onnx_dir / TOKENIZER_FILE, max_length)
    out_dir.mkdir(parents=True, exist_ok=True)
    calibration = (_batches(encoder, calibration_texts, 16) if config.mode == "static" else None)
    target = quantize_onnx(source, out_dir / ONNX_FILE, config, calibration)
    shutil.copyfile(onnx_dir / TOKENIZER_FILE, out_dir / TOKENIZER_FILE)

    agreement = batch1_agreement(source, target, encoder, check_texts, task)
    before, after = source.stat().st_size, target.stat().st_size
    log.info("quantize: %.1f MB -> %.1f MB (%.1fx), agreement %.2f%%", before / 1e6,
             after / 1e6, before / after, 100 * agreement)
    return dict(model_path=str(target), parent=str(onnx_dir), size_before_bytes=before,
                size_after_bytes=after, agreement=agreement, check_texts=len(check_texts),
                config=asdict(config))


def float_outputs_step(
    source_dir: Path, out_dir: Path, check_texts: list[str], max_length: int,
    task: SequenceClassification = CLASSIFICATION,
) -> dict[str, Any]:
    """Rewrite the static INT8 model in `source_dir` (an ONNX folder or a registry
    version) into the float-outputs layout, without quantizing again: the same INT8
    weights and calibrated input scales, rounding only inside the weight MatMuls
    (`quantization.qdq_graph`). Reports agreement with the source on `check_texts`, in
    `task`'s inputs and answers.
    Always runs (a rewrite takes seconds); its result records the source's checksum."""
    source_dir, out_dir = Path(source_dir), Path(out_dir)
    source = source_dir / ONNX_FILE
    if not source.is_file():
        raise ModelError(f"{source_dir}: no {ONNX_FILE}")
    if out_dir.resolve() == source_dir.resolve():
        raise ModelError(f"{out_dir}: the output folder must not be the source's "
                         "(a registry version's files are checksummed)")
    key = ({"source_sha256": sha256_file(source), "layout": FLOAT_OUTPUTS_LAYOUT},)
    return run_step("float-outputs", out_dir, key, lambda _digest: _rewrite(
        source_dir, out_dir, check_texts, max_length, task), reuse=False)


def _rewrite(source_dir: Path, out_dir: Path, check_texts: list[str],
             max_length: int, task: SequenceClassification) -> dict[str, Any]:
    source = source_dir / ONNX_FILE
    model = onnx.load(str(source))
    changed = int8_inside_matmuls_only(model)
    if not changed["matmuls_fused"]:
        raise ModelError(f"{source_dir}: no static INT8 (QDQ) weight MatMul to rewrite (an "
                         "fp32, dynamic or weight-only model, or one already rewritten)")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / ONNX_FILE
    onnx.save(model, str(target))
    shutil.copyfile(source_dir / TOKENIZER_FILE, out_dir / TOKENIZER_FILE)
    encoder = task.batch_encoder(source_dir / TOKENIZER_FILE, max_length)
    agreement = batch1_agreement(source, target, encoder, check_texts, task)
    log.info("float-outputs: %s, agreement with the source %.2f%%", changed, 100 * agreement)
    return dict(model_path=str(target), parent=str(source_dir),
                size_bytes=target.stat().st_size, agreement_with_source=agreement, **changed)
