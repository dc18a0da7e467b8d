"""`export`, `quantize` and `float-outputs`."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from compression.cli.arguments import add_columns, add_window_args, default
from compression.config.steps import CALIBRATIONS, QUANT_PRESETS, QuantConfig
from compression.core.errors import CompressionError

PRESET_HELP = (
    "static: INT8, calibrated activation scales; static-int4-embeddings: the same with "
    "block-wise 4-bit embedding tables; static-float-outputs: INT8 only inside the weight "
    "MatMuls, whose outputs and the residual connections stay float (CPU "
    "MatMulIntegerToFloat), also with 4-bit embeddings; weight-only-*: MatMulNBits; "
    "dynamic*: batch-dependent answers (default: %(default)s)")


def add_parsers(commands: Any) -> None:
    p = commands.add_parser(
        "export", help="export a PyTorch classifier to ONNX and check its outputs",
        description="Export with dynamic batch and sequence axes (TorchScript exporter, "
        "opset 17), optionally fuse attention/LayerNorm/GELU with onnxruntime's transformer "
        "optimizer, then compare ONNX and PyTorch logits on real texts and fail above a "
        "tolerance. Writes OUTPUT/model.onnx and OUTPUT/tokenizer.json. A question "
        "answerer's one output, logits (batch, sequence, 2), holds each token's start and "
        "end logit; its CHECK_DATA is SQuAD JSON, read in the windows it was trained with "
        "(a token classifier's: CoNLL or JSONL).",
    )
    p.add_argument("--model", required=True, help="fine-tuned classifier folder")
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument("--check-data", required=True, help="texts for the parity check (data file)")
    p.add_argument("--optimize", action="store_true", help="run the transformer graph optimizer")
    p.add_argument("--tolerance", type=float, default=1e-3, help="max |logit difference| "
                   "(default: %(default)s)")
    _data_layout(p)
    p.set_defaults(run=run_export)

    p = commands.add_parser(
        "quantize", help="quantize an ONNX model to INT8",
        description="INT8 with onnxruntime.quantization. Presets: static (default: per-channel "
        "weights, activation scales calibrated on training texts, so an answer does not "
        "depend on its batch), dynamic-per-channel, dynamic (per-tensor). Weight MatMuls, "
        "Gemm and the embedding Gather are quantized. Reports size before/after and label "
        "agreement with the fp32 model on CHECK_DATA.",
    )
    p.add_argument("--model", required=True, help="folder with model.onnx and tokenizer.json")
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument("--preset", default="static", choices=list(QUANT_PRESETS), help=PRESET_HELP)
    p.add_argument("--calibration", default=default(QuantConfig, "calibration_method"),
                   choices=CALIBRATIONS, help="static calibration method (default: %(default)s)")
    p.add_argument("--calibration-data", default=None, help="training data file (static)")
    p.add_argument("--calibration-size", type=int,
                   default=default(QuantConfig, "calibration_size"),
                   help="calibration texts (default: %(default)s)")
    p.add_argument("--no-embeddings", action="store_true", help="keep embeddings in fp32")
    p.add_argument("--check-data", required=True, help="dev data for the agreement check")
    _data_layout(p)
    p.set_defaults(run=run_quantize)

    p = commands.add_parser(
        "float-outputs", help="rewrite a static INT8 model into the float-outputs layout",
        description="Take a model quantized with the static preset (an ONNX folder or a "
        "registry version) to the static-float-outputs layout without quantizing it again: "
        "the same INT8 weights and calibrated input scales, but the weight MatMuls' outputs "
        "and the residual connections stay float and each MatMul and its bias run as one "
        "MatMulIntegerToFloat (onnxruntime CPU kernel). Still batch-invariant. Reports "
        "label agreement with the source model on CHECK_DATA.",
    )
    p.add_argument("--model", required=True,
                   help="folder with a static INT8 model.onnx and tokenizer.json")
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument("--check-data", required=True, help="dev data for the agreement check")
    _data_layout(p)
    p.set_defaults(run=run_float_outputs)


def _data_layout(p: argparse.ArgumentParser) -> None:
    """How the data files are read and cut; a question answerer's windows default to
    those it was trained with."""
    add_columns(p, recorded=True)
    add_window_args(p.add_argument_group("question answering"), recorded=True)


# The runs import the export stack (torch, onnx, onnxruntime) when called, not at the top:
# it takes seconds, and `--help` or another command should not wait for it.

def run_export(args: argparse.Namespace) -> str:
    from compression.cli.model_task import model_task
    from compression.exporting.steps import export_step

    checked = model_task(Path(args.model), args)
    result = export_step(Path(args.model), Path(args.output),
                         checked.texts(args.check_data, args, 256), checked.max_length,
                         optimize=args.optimize, tolerance=args.tolerance, task=checked.task)
    return (f"export: {result['model_path']} ({result['size_bytes'] / 1e6:.1f} MB), "
            f"max |onnx - torch| = {result['max_abs_diff']:.2e}")


def run_quantize(args: argparse.Namespace) -> str:
    from compression.cli.model_task import model_task
    from compression.exporting.steps import quantize_step

    config = replace(QuantConfig.preset(args.preset), calibration_method=args.calibration,
                     calibration_size=args.calibration_size,
                     quantize_embeddings=not args.no_embeddings)
    if config.mode == "static" and not args.calibration_data:
        raise CompressionError("static quantization needs --calibration-data (training texts)")
    # A question answerer calibrates and is checked on windows of SQuAD questions.
    checked = model_task(Path(args.model), args)
    calibration = (checked.texts(args.calibration_data, args, args.calibration_size)
                   if config.mode == "static" else [])
    result = quantize_step(Path(args.model), Path(args.output), config, calibration,
                           checked.texts(args.check_data, args), checked.max_length,
                           task=checked.task)
    return (f"quantize: {result['size_before_bytes'] / 1e6:.1f} MB -> "
            f"{result['size_after_bytes'] / 1e6:.1f} MB, agreement with fp32 "
            f"{100 * result['agreement']:.2f}% -> {result['model_path']}")


def run_float_outputs(args: argparse.Namespace) -> str:
    from compression.cli.model_task import model_task
    from compression.exporting.steps import float_outputs_step

    checked = model_task(Path(args.model), args)
    result = float_outputs_step(Path(args.model), Path(args.output),
                                checked.texts(args.check_data, args), checked.max_length,
                                task=checked.task)
    return (f"float-outputs: {result['outputs_unrounded']} output roundings removed, "
            f"{result['readers_unrounded']} residual inputs read float, "
            f"{result['matmuls_fused']} MatMuls fused; agreement with the source "
            f"{100 * result['agreement_with_source']:.2f}% -> {result['model_path']}")
