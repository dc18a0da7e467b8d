"""Steps that turn a PyTorch classifier into servable ONNX folders.

An ONNX folder holds `model.onnx`, `tokenizer.json` and `result.json` (what made it).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from registry import sha256_file

from .configs import QuantConfig, config_digest
from .errors import ModelError
from .evaluate import BatchEncoder, OnnxRunner
from .steps import WEIGHTS_FILE, checksum_or_none, finished_result, write_result

log = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"


def _batches(encoder: BatchEncoder, texts: list[str], size: int) -> list[dict[str, np.ndarray]]:
    return [encoder(texts[i : i + size]) for i in range(0, len(texts), size)]


def _attention_shape(model: Any) -> tuple[int, int]:
    """Heads and q/k/v width for the optimizer's attention fusion: a pruned model's are
    narrower than `hidden_size` (0, 0 = let the optimizer read them off the graph)."""
    attentions = [layer.attention.self for layer in model.bert.encoder.layer]
    shapes = {(a.num_attention_heads, a.all_head_size) for a in attentions}
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
) -> dict[str, Any]:
    """Export a classifier folder to `out_dir/model.onnx` and check parity on real texts."""
    from .export import check_parity, export_onnx, optimize_onnx
    from .modeling import load_classifier

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    # The weights' checksum, not just their path: a retrained model must be re-exported.
    digest = config_digest({"model": str(model_dir), "optimize": optimize,
                            "tolerance": tolerance, "max_length": max_length,
                            "weights": checksum_or_none(model_dir / WEIGHTS_FILE)})
    done = finished_result(out_dir, digest)
    if done:
        return done
    tokenizer_file = model_dir / TOKENIZER_FILE
    if not tokenizer_file.is_file():
        raise ModelError(f"{model_dir}: no {TOKENIZER_FILE} to ship with the ONNX model")
    model = load_classifier(str(model_dir))
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / ONNX_FILE
    export_onnx(model, onnx_path)
    if optimize:
        heads, width = _attention_shape(model)
        optimize_onnx(onnx_path, onnx_path, heads, width)
    shutil.copyfile(tokenizer_file, out_dir / TOKENIZER_FILE)
    encoder = BatchEncoder(out_dir / TOKENIZER_FILE, max_length)
    worst = check_parity(model, onnx_path, _batches(encoder, check_texts, 32), tolerance)
    log.info("export: max |onnx - torch| = %.2e over %d texts", worst, len(check_texts))
    return write_result(
        out_dir, "export", digest, model_path=str(onnx_path), parent=str(model_dir),
        labels=[model.config.id2label[i] for i in range(model.config.num_labels)],
        max_abs_diff=worst, optimized=optimize, size_bytes=onnx_path.stat().st_size,
    )


def batch1_agreement(reference: Path, candidate: Path, encoder: BatchEncoder,
                     texts: list[str]) -> float:
    """Share of `texts` on which two ONNX models give the same label, one text at a time:
    agreement as a service answering single requests sees it."""
    first, second = OnnxRunner(reference, 2), OnnxRunner(candidate, 2)
    same = [int(first.logits(b).argmax(-1)[0] == second.logits(b).argmax(-1)[0])
            for b in (encoder([t]) for t in texts)]
    return float(np.mean(same))


def quantize_step(
    onnx_dir: Path,
    out_dir: Path,
    config: QuantConfig,
    calibration_texts: list[str],
    check_texts: list[str],
    max_length: int,
) -> dict[str, Any]:
    """Quantize `onnx_dir/model.onnx` into `out_dir`; report size and agreement."""
    from .quantize import FLOAT_OUTPUTS_LAYOUT, quantize_onnx

    onnx_dir, out_dir = Path(onnx_dir), Path(out_dir)
    source = onnx_dir / ONNX_FILE
    if not source.is_file():
        raise ModelError(f"{onnx_dir}: no {ONNX_FILE}; run `export` first")
    layout = {"layout": FLOAT_OUTPUTS_LAYOUT} if config.float_outputs else {}
    digest = config_digest({"source": str(onnx_dir), "source_sha256": sha256_file(source),
                            "max_length": max_length,
                            "calibration": hashlib.sha256(
                                "\n".join(calibration_texts).encode()).hexdigest(),
                            **layout}, config)
    done = finished_result(out_dir, digest)
    if done:
        return done
    encoder = BatchEncoder(onnx_dir / TOKENIZER_FILE, max_length)
    out_dir.mkdir(parents=True, exist_ok=True)
    calibration = (_batches(encoder, calibration_texts, 16) if config.mode == "static" else None)
    target = quantize_onnx(source, out_dir / ONNX_FILE, config, calibration)
    shutil.copyfile(onnx_dir / TOKENIZER_FILE, out_dir / TOKENIZER_FILE)

    agreement = batch1_agreement(source, target, encoder, check_texts)
    before, after = source.stat().st_size, target.stat().st_size
    log.info("quantize: %.1f MB -> %.1f MB (%.1fx), agreement %.2f%%", before / 1e6,
             after / 1e6, before / after, 100 * agreement)
    return write_result(
        out_dir, "quantize", digest, model_path=str(target), parent=str(onnx_dir),
        size_before_bytes=before, size_after_bytes=after, agreement=agreement,
        config=asdict(config),
    )


def float_outputs_step(
    source_dir: Path, out_dir: Path, check_texts: list[str], max_length: int
) -> dict[str, Any]:
    """Rewrite the static INT8 model in `source_dir` (an ONNX folder or a registry
    version) into the float-outputs layout, without quantizing again: the same INT8
    weights and calibrated input scales, rounding only inside the weight MatMuls
    (qdq_graph.py). Reports agreement with the source on `check_texts`."""
    import onnx

    from .qdq_graph import int8_inside_matmuls_only
    from .quantize import FLOAT_OUTPUTS_LAYOUT

    source_dir, out_dir = Path(source_dir), Path(out_dir)
    source = source_dir / ONNX_FILE
    if not source.is_file():
        raise ModelError(f"{source_dir}: no {ONNX_FILE}")
    if out_dir.resolve() == source_dir.resolve():
        raise ModelError(f"{out_dir}: the output folder must not be the source's "
                         "(a registry version's files are checksummed)")
    model = onnx.load(str(source))
    changed = int8_inside_matmuls_only(model)
    if not changed["matmuls_fused"]:
        raise ModelError(f"{source_dir}: no static INT8 (QDQ) weight MatMul to rewrite (an "
                         "fp32, dynamic or weight-only model, or one already rewritten)")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / ONNX_FILE
    onnx.save(model, str(target))
    shutil.copyfile(source_dir / TOKENIZER_FILE, out_dir / TOKENIZER_FILE)
    encoder = BatchEncoder(source_dir / TOKENIZER_FILE, max_length)
    agreement = batch1_agreement(source, target, encoder, check_texts)
    log.info("float-outputs: %s, agreement with the source %.2f%%", changed, 100 * agreement)
    return write_result(
        out_dir, "float-outputs",
        config_digest({"source_sha256": sha256_file(source), "layout": FLOAT_OUTPUTS_LAYOUT}),
        model_path=str(target), parent=str(source_dir), size_bytes=target.stat().st_size,
        agreement_with_source=agreement, **changed,
    )
