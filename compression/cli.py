"""`python -m compression <command>`: the offline compression toolkit's command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from registry import RegistryError

from .configs import PRUNE_SCOPES
from .errors import CompressionError

Command = Callable[[argparse.Namespace], str]

DESCRIPTION = """\
Make BERT-family text classifiers smaller and faster, and publish them to the registry.

Typical flow:  finetune -> distill -> export -> quantize -> evaluate -> register,
or all of it from one config file with `pipeline CONFIG.yaml`.
"""


def _add_data_args(parser: argparse.ArgumentParser, dev_required: bool = True) -> None:
    group = parser.add_argument_group("data")
    group.add_argument("--train", required=True,
                       help="training data: .tsv, .csv or .jsonl file, or hf:PATH[:CONFIG]:SPLIT")
    group.add_argument("--dev", required=dev_required, help="dev data, used for model selection")
    group.add_argument("--text-column", default="sentence", help="(default: %(default)s)")
    group.add_argument("--label-column", default="label", help="(default: %(default)s)")
    group.add_argument("--label-names", default=None,
                       help='display names for raw labels, e.g. "0=negative,1=positive"')
    group.add_argument("--max-length", type=int, default=64,
                       help="truncate to this many tokens (default: %(default)s)")
    group.add_argument("--limit-train", type=int, default=None,
                       help="use only the first N training rows (quick trials)")
    group.add_argument("--limit-dev", type=int, default=None,
                       help="use only the first N dev rows (quick trials)")


def _add_train_args(parser: argparse.ArgumentParser, epochs: float, lr: float) -> None:
    group = parser.add_argument_group("optimisation")
    group.add_argument("--epochs", type=float, default=epochs, help="(default: %(default)s)")
    group.add_argument("--lr", type=float, default=lr, help="peak learning rate "
                       "(default: %(default)s)")
    group.add_argument("--batch-size", type=int, default=32,
                       help="halved automatically on out-of-memory (default: %(default)s)")
    group.add_argument("--warmup", type=float, default=0.06,
                       help="warm-up fraction of steps (default: %(default)s)")
    group.add_argument("--seed", type=int, default=42)
    group.add_argument("--max-steps", type=int, default=-1, help="stop after N steps (smoke runs)")
    group.add_argument("--bf16", action="store_true",
                       help="bfloat16 autocast: ~2x faster on GPUs and AVX512-BF16/AMX CPUs")


def _label_names(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    pairs = [item.split("=", 1) for item in text.split(",")]
    if any(len(p) != 2 for p in pairs):
        raise CompressionError(
            f"--label-names: write RAW=NAME pairs separated by commas, got {text!r}"
        )
    return {raw.strip(): name.strip() for raw, name in pairs}


def _data_config(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from .configs import DataConfig

    return DataConfig(
        train=args.train, dev=args.dev, text_column=args.text_column,
        label_column=args.label_column, label_names=_label_names(args.label_names),
        max_length=args.max_length, limit_train=args.limit_train, limit_dev=args.limit_dev,
    )


def _train_config(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from .configs import TrainConfig

    return TrainConfig(
        epochs=args.epochs, learning_rate=args.lr, batch_size=args.batch_size,
        warmup=args.warmup, seed=args.seed, max_steps=args.max_steps, bf16=args.bf16,
    )


def cmd_finetune(args: argparse.Namespace) -> str:
    from .finetune import finetune

    result = finetune(args.model, _data_config(args), _train_config(args), Path(args.output),
                      resume=not args.no_resume)
    return (f"finetune: dev accuracy {result['dev_accuracy']:.4f}, macro-F1 "
            f"{result['dev_macro_f1']:.4f} -> {result['model_dir']} ({result['minutes']} min)")


def _integers(text: str, option: str, example: str) -> tuple[int, ...]:
    """Comma-separated integers from a command-line option, or a one-line error."""
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError as exc:
        raise CompressionError(f"{option}: write {example}; got {text!r}") from exc


def _layers(text: str | None) -> tuple[int, ...] | None:
    return _integers(text, "--layers", "teacher layer indices like 0,2,4") if text else None


def cmd_distill(args: argparse.Namespace) -> str:
    from .configs import DistillConfig
    from .distill import distill

    config = DistillConfig(
        num_layers=args.layers_count, layers=_layers(args.layers), hidden_size=args.hidden_size,
        num_heads=args.heads, temperature=args.temperature, alpha_ce=args.alpha_ce,
        alpha_kl=args.alpha_kl, alpha_cos=args.alpha_cos, alpha_hidden=args.alpha_hidden,
        alpha_attention=args.alpha_attention, cache_teacher_logits=not args.no_cache,
    )
    sparsity = None
    if args.sparsity is not None:
        from .sparsity import SparsityConfig

        sparsity = SparsityConfig(sparsity=args.sparsity, scope=args.sparsity_scope,
                                  end=args.sparsity_end)
    qat = None
    if args.qat or args.qat_float_outputs:
        from .qat import QatConfig

        qat = QatConfig(float_outputs=args.qat_float_outputs)
    augment = None
    if args.augment_copies:
        from .configs import AugmentConfig

        augment = AugmentConfig(copies=args.augment_copies, replace_prob=args.augment_prob,
                                candidates=args.augment_candidates)
    result = distill(args.teacher, _data_config(args), _train_config(args), config,
                     Path(args.output), resume=not args.no_resume, sparsity=sparsity,
                     student_ref=args.student, quantization_aware=qat, augment=augment,
                     embedding_rank=args.embedding_rank, extra_teachers=args.extra_teacher)
    return (f"distill: {result['student_parameters'] / 1e6:.1f}M-parameter student, dev accuracy "
            f"{result['dev_accuracy']:.4f} -> {result['model_dir']} ({result['minutes']} min)")


def _texts(path: str, text_column: str, label_column: str, limit: int | None = None) -> list[str]:
    from .data import load_split

    return load_split(path, text_column, label_column, limit).texts


def cmd_export(args: argparse.Namespace) -> str:
    from .artifacts import export_step

    texts = _texts(args.check_data, args.text_column, args.label_column, 256)
    result = export_step(Path(args.model), Path(args.output), texts, args.max_length,
                         optimize=args.optimize, tolerance=args.tolerance)
    return (f"export: {result['model_path']} ({result['size_bytes'] / 1e6:.1f} MB), "
            f"max |onnx - torch| = {result['max_abs_diff']:.2e}")


def cmd_quantize(args: argparse.Namespace) -> str:
    from dataclasses import replace

    from .artifacts import quantize_step
    from .configs import QuantConfig

    config = replace(QuantConfig.preset(args.preset), calibration_method=args.calibration,
                     calibration_size=args.calibration_size,
                     quantize_embeddings=not args.no_embeddings)
    if config.mode == "static" and not args.calibration_data:
        raise CompressionError("static quantization needs --calibration-data (training texts)")
    calibration = _texts(args.calibration_data, args.text_column, args.label_column,
                         args.calibration_size) if config.mode == "static" else []
    check = _texts(args.check_data, args.text_column, args.label_column)
    result = quantize_step(Path(args.model), Path(args.output), config, calibration, check,
                           args.max_length)
    return (f"quantize: {result['size_before_bytes'] / 1e6:.1f} MB -> "
            f"{result['size_after_bytes'] / 1e6:.1f} MB, agreement with fp32 "
            f"{100 * result['agreement']:.2f}% -> {result['model_path']}")


def cmd_float_outputs(args: argparse.Namespace) -> str:
    from .artifacts import float_outputs_step

    check = _texts(args.check_data, args.text_column, args.label_column)
    result = float_outputs_step(Path(args.model), Path(args.output), check, args.max_length)
    return (f"float-outputs: {result['outputs_unrounded']} output roundings removed, "
            f"{result['readers_unrounded']} residual inputs read float, "
            f"{result['matmuls_fused']} MatMuls fused; agreement with the source "
            f"{100 * result['agreement_with_source']:.2f}% -> {result['model_path']}")


def _thread_counts(text: str) -> tuple[int, ...]:
    example = "thread counts like 1,2"
    counts = _integers(text, "--latency-threads", example) if text else ()
    if any(n < 1 for n in counts):
        raise CompressionError(f"--latency-threads: write {example}; got {text!r}")
    return counts


def cmd_evaluate(args: argparse.Namespace) -> str:
    from .data import LabelSpace, load_split
    from .evaluate import Variant, evaluate, markdown_table, write_reports

    dev = load_split(args.data, args.text_column, args.label_column, args.limit)
    labels_from = load_split(args.train, args.text_column, args.label_column) if args.train \
        else dev
    space = LabelSpace.from_train(labels_from)
    variants = [Variant.from_path(Path(p)) for p in args.models]
    reports = evaluate(variants, dev.texts, space.encode(dev), args.max_length,
                       threads=args.threads, rounds=args.rounds,
                       latency_threads=_thread_counts(args.latency_threads))
    paths = write_reports(reports, Path(args.output))
    print(markdown_table(reports))
    return f"evaluate: {len(reports)} variants -> {paths['markdown']}, {paths['json']}, " \
           f"{paths['chart']}"


def cmd_register(args: argparse.Namespace) -> str:
    from .register import register

    metrics = json.loads(Path(args.metrics).read_text()) if args.metrics else {}
    path = register(Path(args.model), Path(args.registry), args.name,
                    [x.strip() for x in args.labels.split(",")], args.max_length,
                    metrics, version=args.version, force=args.force)
    return f"register: published {path}"


def cmd_prune_vocab(args: argparse.Namespace) -> str:
    from .vocab import prune_vocabulary

    texts = _texts(args.train, args.text_column, args.label_column, args.limit_train)
    result = prune_vocabulary(Path(args.model), Path(args.output), texts,
                              keep_chars=not args.no_keep_chars, unseen=args.unseen,
                              min_count=args.min_count)
    return (f"prune-vocab: vocabulary {result['vocab_before']} -> {result['vocab_after']} "
            f"tokens, embeddings {result['embedding_parameters_before'] / 1e6:.1f}M -> "
            f"{result['embedding_parameters_after'] / 1e6:.1f}M parameters -> "
            f"{result['model_dir']}")


def cmd_prune_structure(args: argparse.Namespace) -> str:
    from .configs import DistillConfig, PruneConfig
    from .data import load_data
    from .distill import distill
    from .structure import prune_structure

    config = PruneConfig(heads=args.heads, ffn=args.ffn,
                         importance_batches=args.importance_batches, scope=args.scope)
    data = _data_config(args)
    splits = load_data(data)
    output = Path(args.output)
    pruned = prune_structure(Path(args.model), output / "pruned", splits.train.texts,
                             splits.labels.encode(splits.train), config, args.max_length)
    summary = (f"prune-structure: {pruned['parameters_before'] / 1e6:.1f}M -> "
               f"{pruned['parameters_after'] / 1e6:.1f}M parameters")
    if not args.teacher:
        return f"{summary} -> {pruned['model_dir']} (not retrained: pass --teacher to recover)"
    recovered = distill(args.teacher, data, _train_config(args),
                        DistillConfig(temperature=args.temperature, alpha_ce=args.alpha_ce,
                                      alpha_kl=args.alpha_kl),
                        output, resume=not args.no_resume, student_ref=pruned["model_dir"])
    return (f"{summary}, dev accuracy {recovered['dev_accuracy']:.4f} after recovery -> "
            f"{recovered['model_dir']} ({recovered['minutes']} min)")


def cmd_pipeline(args: argparse.Namespace) -> str:
    from .pipeline import Pipeline, PipelineConfig

    result = Pipeline(PipelineConfig.load(Path(args.config)), force=args.force).run()
    from .evaluate import markdown_table

    print(markdown_table(result["reports"]))
    return f"pipeline: published {result['published'] or 'nothing'}; evaluation in " \
           f"{result['eval_dir']}"


def cmd_bench(args: argparse.Namespace) -> str:
    from .bench import run_benchmark

    path = run_benchmark(Path(args.config), Path(args.output), rounds=args.rounds,
                         register=args.register, force=args.force)
    return f"bench: wrote {path}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m compression", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = commands.add_parser(
        "finetune", help="fine-tune a pretrained encoder into a classifier",
        description="Fine-tune a BERT-family encoder (folder or hub id) on labelled text. "
        "Evaluates on dev each epoch and keeps the best checkpoint in OUTPUT/model; "
        "re-running resumes from the last checkpoint. TensorBoard logs go to "
        "OUTPUT/checkpoints/runs.",
    )
    p.add_argument("--model", required=True, help="pretrained encoder: folder or hub id")
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument("--no-resume", action="store_true",
                   help="start over; earlier checkpoints move to OUTPUT/checkpoints/stale-N")
    _add_data_args(p)
    _add_train_args(p, epochs=3, lr=5e-5)
    p.set_defaults(run=cmd_finetune)

    p = commands.add_parser(
        "distill", help="distil a smaller student from a fine-tuned teacher",
        description="Train a student with fewer layers (or a narrower one) to imitate a "
        "fine-tuned teacher. loss = a_ce*CE + a_kl*T^2*KL(soft targets) + a_cos*(1-cos) on "
        "hidden states + TinyBERT's hidden/attention MSE. A same-width student starts from "
        "copies of the teacher's embeddings and chosen layers (DistilBERT-style).",
    )
    p.add_argument("--teacher", required=True, help="fine-tuned classifier folder")
    p.add_argument("--extra-teacher", action="append", default=[], metavar="FOLDER",
                   help="another fine-tuned classifier (same vocabulary and labels, e.g. the "
                   "teacher trained with another seed); repeat for more. The soft targets "
                   "become the ensemble's mean logits; hidden-state losses follow --teacher")
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument("--student", default=None,
                   help="start from this classifier folder (an earlier student) instead of "
                   "copying teacher layers; the shape options are then ignored. A student "
                   "whose vocabulary was pruned with --unseen nearest reads the teacher's "
                   "token ids through their strings and keeps its own tokenizer")
    p.add_argument("--layers-count", type=int, default=3, help="student layers (default: 3)")
    p.add_argument("--embedding-rank", type=int, default=None,
                   help="train the word embeddings as a (vocabulary x R) table times an "
                   "(R x hidden) projection, from the table's truncated SVD: about R/hidden of "
                   "the table's size in the ONNX file (ALBERT-style; default: full table)")
    p.add_argument("--layers", default=None,
                   help="teacher layers to copy, e.g. 0,2,4 (default: evenly spaced)")
    p.add_argument("--hidden-size", type=int, default=None,
                   help="narrower student of this width, randomly initialised")
    p.add_argument("--heads", type=int, default=None, help="attention heads of a narrower student")
    p.add_argument("--temperature", type=float, default=2.0, help="(default: %(default)s)")
    p.add_argument("--alpha-ce", type=float, default=0.5, help="hard-label weight (default: 0.5)")
    p.add_argument("--alpha-kl", type=float, default=0.5, help="soft-target weight (default: 0.5)")
    p.add_argument("--alpha-cos", type=float, default=0.0, help="hidden cosine weight (default: 0)")
    p.add_argument("--alpha-hidden", type=float, default=0.0,
                   help="TinyBERT hidden-state MSE weight (default: 0)")
    p.add_argument("--alpha-attention", type=float, default=0.0,
                   help="TinyBERT attention-map MSE weight (default: 0)")
    p.add_argument("--no-cache", action="store_true", help="do not cache teacher logits")
    p.add_argument("--no-resume", action="store_true",
                   help="start over; earlier checkpoints move to OUTPUT/checkpoints/stale-N")
    group = p.add_argument_group("magnitude pruning during distillation (unstructured)")
    group.add_argument("--sparsity", type=float, default=None,
                       help="fraction of encoder weights set to zero by the end, in [0, 1); "
                       "shrinks the compressed download, not the dense ONNX file or its speed")
    group.add_argument("--sparsity-scope", default="global", choices=("global", "per-layer"),
                       help="one threshold for all matrices, or the fraction in each "
                       "(default: %(default)s)")
    group.add_argument("--sparsity-end", type=float, default=0.7,
                       help="fraction of training by which the cubic schedule reaches the target "
                       "(default: %(default)s)")
    group = p.add_argument_group("quantization-aware training")
    group.add_argument("--qat", action="store_true",
                       help="train under simulated static INT8 (uint8 activations, per-channel "
                       "int8 weights and embeddings), usually with --student, one epoch and "
                       "a small learning rate; then export and quantize with --preset static")
    group.add_argument("--qat-float-outputs", action="store_true",
                       help="QAT for the static-float-outputs layout: only each MatMul's input "
                       "and weight (and the embeddings) are rounded, outputs and residuals "
                       "stay float; then quantize with --preset static-float-outputs")
    group = p.add_argument_group("data augmentation (TinyBERT-style)")
    group.add_argument("--augment-copies", type=int, default=0,
                       help="add N word-swapped copies of every training sentence, learnt "
                       "from the teacher's outputs only (default: 0, none); each copy is "
                       "another epoch's worth of training time")
    group.add_argument("--augment-prob", type=float, default=0.3,
                       help="chance that a word is swapped (default: %(default)s)")
    group.add_argument("--augment-candidates", type=int, default=8,
                       help="a word is swapped for one of its N nearest words in the "
                       "teacher's input embeddings (default: %(default)s)")
    _add_data_args(p)
    _add_train_args(p, epochs=3, lr=1e-4)
    p.set_defaults(run=cmd_distill)

    p = commands.add_parser(
        "export", help="export a PyTorch classifier to ONNX and check its outputs",
        description="Export with dynamic batch and sequence axes (TorchScript exporter, "
        "opset 17), optionally fuse attention/LayerNorm/GELU with onnxruntime's transformer "
        "optimizer, then compare ONNX and PyTorch logits on real texts and fail above a "
        "tolerance. Writes OUTPUT/model.onnx and OUTPUT/tokenizer.json.",
    )
    p.add_argument("--model", required=True, help="fine-tuned classifier folder")
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument("--check-data", required=True, help="texts for the parity check (data file)")
    p.add_argument("--optimize", action="store_true", help="run the transformer graph optimizer")
    p.add_argument("--tolerance", type=float, default=1e-3, help="max |logit difference| "
                   "(default: %(default)s)")
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--text-column", default="sentence")
    p.add_argument("--label-column", default="label")
    p.set_defaults(run=cmd_export)

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
    p.add_argument("--preset", default="static",
                   choices=["static", "static-int4-embeddings", "static-float-outputs",
                            "static-float-outputs-int4-embeddings", "dynamic",
                            "dynamic-per-channel", "weight-only-int8", "weight-only-int4"],
                   help="static: INT8, calibrated activation scales; static-int4-embeddings: "
                   "the same with block-wise 4-bit embedding tables; static-float-outputs: "
                   "INT8 only inside the weight MatMuls, whose outputs and the residual "
                   "connections stay float (CPU MatMulIntegerToFloat), also with 4-bit "
                   "embeddings; weight-only-*: "
                   "MatMulNBits; dynamic*: batch-dependent answers (default: %(default)s)")
    p.add_argument("--calibration", default="minmax", choices=["minmax", "entropy", "percentile"],
                   help="static calibration method (default: %(default)s)")
    p.add_argument("--calibration-data", default=None, help="training data file (static)")
    p.add_argument("--calibration-size", type=int, default=512)
    p.add_argument("--no-embeddings", action="store_true", help="keep embeddings in fp32")
    p.add_argument("--check-data", required=True, help="dev data for the agreement check")
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--text-column", default="sentence")
    p.add_argument("--label-column", default="label")
    p.set_defaults(run=cmd_quantize)

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
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--text-column", default="sentence")
    p.add_argument("--label-column", default="label")
    p.set_defaults(run=cmd_float_outputs)

    p = commands.add_parser(
        "evaluate", help="compare models side by side: accuracy, size, latency",
        description="Evaluate PyTorch folders, .onnx files and registry versions on one "
        "dataset in one process: accuracy, macro-F1, agreement with the first model, size, "
        "batch-1 latency p50/p95, batch-32 throughput. Writes evaluation.md/.json/.png.",
    )
    p.add_argument("models", nargs="+", help="model folders/files; the first is the reference")
    p.add_argument("--data", required=True, help="labelled evaluation data")
    p.add_argument("--train", default=None, help="training data, to fix the label order")
    p.add_argument("--output", default="runs/evaluation", help="(default: %(default)s)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads (default: 2)")
    p.add_argument("--latency-threads", default="",
                   help="also measure batch-1 latency at these intra-op thread counts, e.g. "
                   "1,2, and report the fastest (a small model is not always faster on "
                   "more threads); default: --threads only")
    p.add_argument("--limit", type=int, default=None, help="first N rows only")
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--text-column", default="sentence")
    p.add_argument("--label-column", default="label")
    p.set_defaults(run=cmd_evaluate)

    p = commands.add_parser(
        "register", help="publish an ONNX folder as a new registry version",
        description="Copy model.onnx and tokenizer.json into REGISTRY/NAME/VERSION with a "
        "manifest (labels, metrics, sha256 of every file, lineage). Atomic; refuses an "
        "existing version unless --force.",
    )
    p.add_argument("--model", required=True, help="folder with model.onnx and tokenizer.json")
    p.add_argument("--name", required=True)
    p.add_argument("--labels", required=True, help="label names in class order, e.g. "
                   "negative,positive")
    p.add_argument("--version", default=None, help="(default: the next number)")
    p.add_argument("--registry", default="models", help="(default: %(default)s)")
    p.add_argument("--metrics", default=None, help="JSON file of metrics for the manifest")
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--force", action="store_true", help="replace an existing version")
    p.set_defaults(run=cmd_register)

    p = commands.add_parser(
        "prune-vocab", help="drop the WordPiece tokens the task's training data never uses",
        description="Keep only the tokens seen when tokenizing the training texts, plus the "
        "special tokens and (unless --no-keep-chars) every single-character and ##character "
        "piece, so unseen words still split into characters. Shrinks the embedding matrix and "
        "rewrites tokenizer.json consistently; writes OUTPUT/model and OUTPUT/result.json.",
    )
    p.add_argument("--model", required=True, help="fine-tuned classifier folder")
    p.add_argument("--train", required=True, help="training data whose tokens are kept")
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument("--text-column", default="sentence")
    p.add_argument("--label-column", default="label")
    p.add_argument("--limit-train", type=int, default=None,
                   help="use only the first N training rows")
    p.add_argument("--no-keep-chars", action="store_true",
                   help="drop unseen character pieces too (unseen words become [UNK])")
    p.add_argument("--unseen", default="chars", choices=("chars", "nearest"),
                   help="what a dropped token becomes: 'chars' (split into kept pieces) or "
                   "'nearest' (stays one token, sharing the embedding row of its most similar "
                   "kept token) (default: %(default)s)")
    p.add_argument("--min-count", type=int, default=1,
                   help="keep only the tokens the training texts use at least this many times "
                   "(special tokens and characters are always kept); the rarer ones are "
                   "dropped like unseen ones (default: %(default)s)")
    p.set_defaults(run=cmd_prune_vocab)

    p = commands.add_parser(
        "prune-structure", help="remove attention heads and FFN neurons, then recover",
        description="Structured pruning: score every attention head and feed-forward neuron "
        "by |dLoss/dgate| over training batches (Michel et al. 2019), keep the --heads and "
        "--ffn most important in every layer (the matrices shrink, so the model is faster "
        "in any runtime), then, with --teacher, recover accuracy by distilling from the "
        "teacher. Writes OUTPUT/pruned/model (pruned) and OUTPUT/model (recovered).",
    )
    p.add_argument("--model", required=True, help="fine-tuned classifier folder to prune")
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument("--heads", type=int, default=None, help="attention heads kept per layer")
    p.add_argument("--ffn", type=int, default=None, help="feed-forward neurons kept per layer")
    p.add_argument("--scope", default="per-layer", choices=PRUNE_SCOPES,
                   help="per-layer: every layer keeps --heads and --ffn; global: the model "
                   "keeps that many per layer on average, the most important across layers "
                   "(at least one per layer) (default: %(default)s)")
    p.add_argument("--importance-batches", type=int, default=64,
                   help="training batches that score importance (default: %(default)s)")
    p.add_argument("--teacher", default=None,
                   help="fine-tuned teacher to distil from after pruning (recommended)")
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--alpha-ce", type=float, default=0.5)
    p.add_argument("--alpha-kl", type=float, default=0.5)
    p.add_argument("--no-resume", action="store_true",
                   help="start over; earlier checkpoints move to OUTPUT/checkpoints/stale-N")
    _add_data_args(p)
    _add_train_args(p, epochs=2, lr=1e-4)
    p.set_defaults(run=cmd_prune_structure)

    p = commands.add_parser(
        "pipeline", help="run the whole chain from a YAML/TOML config",
        description="Fine-tune (or take a fine-tuned teacher), distil, export, quantize, "
        "evaluate and register, as the config says. Finished steps with the same config are "
        "reused, so an interrupted run continues where it stopped.",
    )
    p.add_argument("config", help="pipeline config, e.g. examples/sst2.yaml")
    p.add_argument("--force", action="store_true", help="replace existing registry versions")
    p.set_defaults(run=cmd_pipeline)

    p = commands.add_parser(
        "bench", help="benchmark every variant of a pipeline; write docs/benchmarks.md",
        description="Measure, in one process, the teacher in PyTorch fp32 and every ONNX "
        "variant the pipeline produced (running missing steps first), and write a Markdown "
        "report with the machine, the command, the table and a chart.",
    )
    p.add_argument("config", nargs="?", default="examples/sst2.yaml")
    p.add_argument("--output", default="docs/benchmarks.md", help="(default: %(default)s)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    p.add_argument("--register", action="store_true",
                   help="also publish the config's register.variants with this run's metrics")
    p.add_argument("--force", action="store_true", help="replace existing registry versions")
    p.set_defaults(run=cmd_bench)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Third-party libraries (onnxruntime's quantizer) log chatter on the root logger:
    # keep it at WARNING and show this package's progress at INFO.
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S",
    )
    logging.getLogger("compression").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        summary = args.run(args)
    except (CompressionError, RegistryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: nothing was published", file=sys.stderr)
        return 130
    if isinstance(summary, dict):
        summary = json.dumps(summary)
    print(summary)
    return 0
