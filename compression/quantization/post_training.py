"""ONNX fp32 -> INT8 with onnxruntime's quantization tools.

Two modes:
- dynamic: weights INT8 ahead of time, activation scales computed at run time over the
  whole batch tensor. Fast, but a prediction then depends on what it is batched with
  (docs/experiments/sst2.md, findings), which a batching service must not allow.
- static: activation scales fixed by calibration on training sentences (QDQ format), so
  a text gets the same answer alone or in any batch.
Only weight MatMuls (and Gemm, and the embedding Gather) are quantized: the attention
score MatMuls multiply two activations, and fixed scales there cost accuracy.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.matmul_nbits_quantizer import (
    DefaultWeightOnlyQuantConfig,
    MatMulNBitsQuantizer,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from compression.config.steps import QuantConfig
from compression.quantization.nibble_lookup import plain_op_4bit_lookups
from compression.quantization.qdq_graph import int8_inside_matmuls_only

log = logging.getLogger(__name__)

# Bumped when the graph written for an unchanged config changes, so that finished
# quantize steps are redone: 2 = float_outputs graphs rewritten by qdq_graph.py (same package).
FLOAT_OUTPUTS_LAYOUT = 2

CALIBRATION_METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}


class TokenizedCalibrationReader(CalibrationDataReader):
    """Feeds calibration batches (already tokenized numpy arrays) to the calibrator."""

    def __init__(self, batches: list[dict[str, np.ndarray]], input_names: set[str]) -> None:
        self._batches = [{k: v.astype(np.int64) for k, v in b.items() if k in input_names}
                         for b in batches]
        self._iter: Iterator[dict[str, np.ndarray]] = iter(self._batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._iter, None)

    def rewind(self) -> None:
        self._iter = iter(self._batches)


def uniform_batches(batches: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    """One row per batch, right-padded to the longest sequence of all (pad id 0, mask 0):
    histogram calibrators stack activations across batches, so every shape must match."""
    longest = max(b["input_ids"].shape[1] for b in batches)
    padded = [{k: np.pad(v, ((0, 0), (0, longest - v.shape[1]))) for k, v in b.items()}
              for b in batches]
    return [{k: v[row : row + 1] for k, v in b.items()}
            for b in padded for row in range(b["input_ids"].shape[0])]


def weight_node_names(model: onnx.ModelProto, op_types: tuple[str, ...]) -> list[str]:
    """Nodes of `op_types` that multiply by a constant weight (an initializer)."""
    initializers = {init.name for init in model.graph.initializer}
    # Weights may reach a MatMul through a Transpose or Cast of an initializer.
    for node in model.graph.node:
        if node.op_type in ("Transpose", "Cast", "Identity") and node.input[0] in initializers:
            initializers.update(node.output)
    return [
        node.name
        for node in model.graph.node
        if node.op_type in op_types and any(name in initializers for name in node.input)
    ]


def _ensure_node_names(model: onnx.ModelProto) -> None:
    for index, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{index}"


def _weight_only(model: onnx.ModelProto, out_path: Path, config: QuantConfig) -> None:
    """Block-wise low-bit weights for MatMul (MatMulNBits) and the embedding Gather.

    onnxruntime's block quantizer handles Gather at 4 bits only; at 8 bits the embedding
    table is quantized afterwards by the dynamic quantizer's Gather rule, which stores
    INT8 weights and dequantizes the looked-up rows (no activation scales involved).
    """
    gather_by_block = config.quantize_embeddings and config.bits == 4
    op_types = ("MatMul", "Gather") if gather_by_block else ("MatMul",)
    axes = (("MatMul", 0), ("Gather", 1))
    algo = DefaultWeightOnlyQuantConfig(
        block_size=config.block_size, is_symmetric=True, accuracy_level=config.accuracy_level,
        op_types_to_quantize=op_types, quant_axes=axes, bits=config.bits,
    )
    quantizer = MatMulNBitsQuantizer(
        model, bits=config.bits, block_size=config.block_size, is_symmetric=True,
        accuracy_level=config.accuracy_level, op_types_to_quantize=op_types,
        quant_axes=axes, algo_config=algo,
    )
    quantizer.process()
    if gather_by_block:
        plain_op_4bit_lookups(quantizer.model.model)
    if config.quantize_embeddings and not gather_by_block:
        with tempfile.TemporaryDirectory() as tmp:
            blocked = Path(tmp) / "blocked.onnx"
            quantizer.model.save_model_to_file(str(blocked), use_external_data_format=False)
            quantize_dynamic(
                str(blocked), str(out_path), op_types_to_quantize=["Gather"],
                per_channel=False, weight_type=QuantType.QInt8,
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
    else:
        quantizer.model.save_model_to_file(str(out_path), use_external_data_format=False)


def _embeddings_4bit(model_path: Path, out_path: Path, block_size: int) -> None:
    """Block-wise 4-bit embedding tables: a looked-up row is dequantized alone, so no
    activation scale is involved and answers stay batch-invariant. The quantizer's
    GatherBlockQuantized is then rewritten into faster plain operators (nibble_lookup)."""
    model = onnx.load(str(model_path))
    axes = (("Gather", 1),)
    algo = DefaultWeightOnlyQuantConfig(block_size=block_size, is_symmetric=True,
                                        op_types_to_quantize=("Gather",), quant_axes=axes, bits=4)
    quantizer = MatMulNBitsQuantizer(model, bits=4, block_size=block_size, is_symmetric=True,
                                     op_types_to_quantize=("Gather",), quant_axes=axes,
                                     algo_config=algo)
    quantizer.process()
    plain_op_4bit_lookups(quantizer.model.model)
    quantizer.model.save_model_to_file(str(out_path), use_external_data_format=False)


def _int8_inside_matmuls_only(path: Path) -> None:
    model = onnx.load(str(path))
    changed = int8_inside_matmuls_only(model)
    log.info("quantize: float-outputs layout %s", changed)
    onnx.save(model, str(path))


def quantize_onnx(
    fp32_path: Path,
    out_path: Path,
    config: QuantConfig,
    calibration_batches: list[dict[str, np.ndarray]] | None = None,
) -> Path:
    """Quantize `fp32_path` to INT8 at `out_path` according to `config`."""
    fp32_path, out_path = Path(fp32_path), Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # 4-bit embeddings are a second pass after the MatMuls (the INT8 pass leaves Gather).
    gather_4bit = config.quantize_embeddings and config.embedding_bits == 4 \
        and config.mode != "weight-only"
    op_types = ("MatMul", "Gemm") + (
        ("Gather",) if config.quantize_embeddings and not gather_4bit else ())
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        # Shape inference and constant folding first; the symbolic pass fails on the
        # exporter's graph (docs/experiments/sst2.md), plain ONNX shape inference is enough.
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        model = onnx.load(str(prepared))
        _ensure_node_names(model)
        onnx.save(model, str(prepared))
        nodes = weight_node_names(model, op_types)
        log.info("quantize: %d weight nodes of %s", len(nodes), op_types)
        if config.mode == "weight-only":
            _weight_only(model, out_path, config)
        elif config.mode == "dynamic":
            _dynamic(model, prepared, out_path, config, op_types, nodes)
        else:
            _static(model, prepared, out_path, config, op_types, nodes, calibration_batches)
    if gather_4bit:
        _embeddings_4bit(out_path, out_path, config.block_size)
    return out_path


def _dynamic(model: onnx.ModelProto, prepared: Path, out_path: Path, config: QuantConfig,
             op_types: tuple[str, ...], nodes: list[str]) -> None:
    # The dynamic quantizer rewrites Gemm `G` into MatMul `G_MatMul` + Add before
    # choosing nodes: name both so the pooler and classifier are quantized too.
    gemms = [n.name + "_MatMul" for n in model.graph.node
             if n.op_type == "Gemm" and n.name in nodes]
    quantize_dynamic(
        str(prepared), str(out_path), op_types_to_quantize=list(op_types),
        nodes_to_quantize=nodes + gemms, per_channel=config.per_channel,
        weight_type=QuantType.QInt8,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


def _static(model: onnx.ModelProto, prepared: Path, out_path: Path, config: QuantConfig,
            op_types: tuple[str, ...], nodes: list[str],
            calibration_batches: list[dict[str, np.ndarray]] | None) -> None:
    if not calibration_batches:
        raise ValueError("static quantization needs calibration batches")
    inputs = {i.name for i in model.graph.input}
    if config.calibration_method != "minmax":
        # Histogram calibrators stack activations across batches: one length.
        calibration_batches = uniform_batches(calibration_batches)
    quantize_static(
        str(prepared), str(out_path),
        calibration_data_reader=TokenizedCalibrationReader(calibration_batches, inputs),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=list(op_types),
        nodes_to_quantize=nodes,
        per_channel=config.per_channel,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CALIBRATION_METHODS[config.calibration_method],
        extra_options={
            "DefaultTensorType": onnx.TensorProto.FLOAT,
            "ActivationSymmetric": False,
            "WeightSymmetric": True,
            **({"OpTypesToExcludeOutputQuantization": ["MatMul", "Gemm"]}
               if config.float_outputs else {}),
        },
    )
    if config.float_outputs:
        _int8_inside_matmuls_only(out_path)
