"""What unstructured magnitude pruning buys: the same student dense and sparse, side by side.

    python bench/sparsity.py --student runs/sst2/students/l3/model     # docs/sparsity.md

The sparse student continues distillation from the dense one while `GradualMagnitudePruning`
zeroes its encoder weights on a cubic schedule up to --sparsity. Both are exported and
quantized the same way and measured in this one run: dev accuracy, ONNX file size, the
size after zlib (what a download or a registry pull would move), and batch-1 latency.
Zeros do not shrink a dense ONNX tensor and dense onnxruntime kernels multiply them like
any other weight, so only the compressed size should move.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="examples/sst2.yaml",
                        help="pipeline config: data, teacher and work folder")
    parser.add_argument("--student", default="runs/sst2/students/l3/model")
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", default=str(ROOT / "docs" / "sparsity.md"))
    return parser.parse_args()


def markdown(args: argparse.Namespace, report: dict, reports: list,
             zipped: dict[str, float]) -> list[str]:
    lines = [
        "# Magnitude pruning: what sparsity buys",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; command: "
        f"`python bench/sparsity.py --sparsity {args.sparsity} --epochs {args.epochs}`.",
        f"The sparse student is `{args.student}` distilled {args.epochs:g} more epoch(s) with "
        f"gradual global magnitude pruning to {report['sparsity']:.1%} of its "
        f"{report['prunable_parameters'] / 1e6:.1f}M encoder weights (embeddings, biases, "
        "LayerNorm, pooler and classifier stay dense). Dense = the same student before.",
        "",
        "| variant | dev acc | ONNX MB | zlib MB | zlib vs dense | b1 p50 ms |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in reports:
        dense = r.name.replace("sparse", "dense")
        lines.append(f"| {r.name} | {100 * r.accuracy:.2f} | {r.size_mb:.1f} | "
                     f"{zipped[r.name]:.1f} | {zipped[r.name] / zipped[dense]:.2f}x | "
                     f"{r.latency_p50_ms:.2f} |")
    return lines


def main() -> None:
    args = parse_args()
    from compression.config.scaling import calibration_size
    from compression.config.steps import DistillConfig, QuantConfig, TrainConfig
    from compression.core.data import load_data
    from compression.evaluation.evaluate import evaluate
    from compression.evaluation.runners import Variant
    from compression.exporting.steps import ONNX_FILE, export_step, quantize_step
    from compression.pipeline import Pipeline, PipelineConfig, spread
    from compression.pruning.magnitude import SparsityConfig, compressed_size
    from compression.training.distill import distill

    config = PipelineConfig.load(Path(args.config))
    work = config.work_dir / "sparsity"
    sparse = distill(Pipeline(config).teacher(), config.data,
                     TrainConfig(epochs=args.epochs, learning_rate=5e-5, bf16=True),
                     DistillConfig(alpha_ce=0.5, alpha_kl=0.5), work / "student",
                     cache_dir=config.work_dir / "cache", student_ref=args.student,
                     sparsity=SparsityConfig(sparsity=args.sparsity))
    splits = load_data(config.data)
    dev = splits.dev
    # The same calibration sentences as the pipeline's own static INT8 variants.
    calibration = spread(splits.train.texts,
                         calibration_size(config.calibration_size, len(splits.train.texts)))
    variants = []
    for name, model_dir in (("dense", args.student), ("sparse", sparse["model_dir"])):
        fp32 = work / f"{name}-fp32"
        export_step(Path(model_dir), fp32, dev.texts[:64], config.data.max_length)
        int8 = work / f"{name}-int8-static"
        quantize_step(fp32, int8, QuantConfig.preset("static"), calibration, dev.texts[:64],
                      config.data.max_length)
        variants += [Variant.from_path(fp32 / ONNX_FILE, f"{name}-fp32"),
                     Variant.from_path(int8 / ONNX_FILE, f"{name}-int8-static")]
    reports = evaluate(variants, dev.texts, splits.labels.encode(dev), config.data.max_length,
                       rounds=args.rounds, memory=False)
    zipped = {v.name: compressed_size(v.model_file) / 1e6 for v in variants}
    lines = markdown(args, sparse["sparsity"], reports, zipped)
    Path(args.output).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))

if __name__ == "__main__":
    main()
