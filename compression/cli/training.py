"""`finetune` and `distill`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from compression.cli.arguments import (
    add_data_args,
    add_resume,
    add_train_args,
    data_config,
    default,
    integers,
    train_config,
)
from compression.config.steps import (
    SPARSITY_SCOPES,
    AugmentConfig,
    DistillConfig,
    QatConfig,
    SparsityConfig,
)


def add_parsers(commands: Any) -> None:
    p = commands.add_parser(
        "finetune", help="fine-tune a pretrained encoder into a classifier",
        description="Fine-tune a BERT-family encoder (folder or hub id) on labelled text. "
        "Evaluates on dev each epoch and keeps the best checkpoint in OUTPUT/model; "
        "re-running resumes from the last checkpoint. TensorBoard logs go to "
        "OUTPUT/checkpoints/runs.",
    )
    p.add_argument("--model", required=True, help="pretrained encoder: folder or hub id")
    p.add_argument("--output", required=True, help="output folder")
    add_resume(p)
    add_data_args(p)
    add_train_args(p)
    p.set_defaults(run=run_finetune)

    p = commands.add_parser(
        "distill", help="distil a smaller student from a fine-tuned teacher",
        description="Train a student with fewer layers (or a narrower one) to imitate a "
        "fine-tuned teacher. loss = a_ce*CE + a_kl*T^2*KL(soft targets) + a_cos*(1-cos) on "
        "hidden states + TinyBERT's hidden/attention MSE. A same-width student starts from "
        "copies of the teacher's embeddings and chosen layers (DistilBERT-style).",
    )
    _student_args(p)
    add_loss_weights(p)
    p.add_argument("--no-cache", action="store_true", help="do not cache teacher logits")
    add_resume(p)
    _sparsity_args(p)
    _qat_args(p)
    _augment_args(p)
    add_data_args(p)
    add_train_args(p, learning_rate=1e-4)
    p.set_defaults(run=run_distill)


def _student_args(p: argparse.ArgumentParser) -> None:
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
    p.add_argument("--layers-count", type=int, default=default(DistillConfig, "num_layers"),
                   help="student layers (default: %(default)s)")
    p.add_argument("--embedding-rank", type=int, default=None,
                   help="train the word embeddings as a (vocabulary x R) table times an "
                   "(R x hidden) projection, from the table's truncated SVD: about R/hidden of "
                   "the table's size in the ONNX file (ALBERT-style; default: full table)")
    p.add_argument("--layers", default=None,
                   help="teacher layers to copy, e.g. 0,2,4 (default: evenly spaced)")
    p.add_argument("--hidden-size", type=int, default=None,
                   help="narrower student of this width, randomly initialised")
    p.add_argument("--heads", type=int, default=None, help="attention heads of a narrower student")


def add_loss_weights(p: Any, all_terms: bool = True) -> None:
    """--temperature and the loss weights, defaults from DistillConfig."""
    p.add_argument("--temperature", type=float, default=default(DistillConfig, "temperature"),
                   help="softmax temperature of the soft targets (default: %(default)s)")
    weights = [("ce", "hard-label weight"), ("kl", "soft-target weight")]
    if all_terms:
        weights += [("cos", "hidden cosine weight"),
                    ("hidden", "TinyBERT hidden-state MSE weight"),
                    ("attention", "TinyBERT attention-map MSE weight")]
    for term, what in weights:
        p.add_argument(f"--alpha-{term}", type=float,
                       default=default(DistillConfig, f"alpha_{term}"),
                       help=f"{what} (default: %(default)s)")


def _sparsity_args(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("magnitude pruning during distillation (unstructured)")
    group.add_argument("--sparsity", type=float, default=None,
                       help="fraction of encoder weights set to zero by the end, in [0, 1); "
                       "shrinks the compressed download, not the dense ONNX file or its speed")
    group.add_argument("--sparsity-scope", default=default(SparsityConfig, "scope"),
                       choices=SPARSITY_SCOPES,
                       help="one threshold for all matrices, or the fraction in each "
                       "(default: %(default)s)")
    group.add_argument("--sparsity-end", type=float, default=default(SparsityConfig, "end"),
                       help="fraction of training by which the cubic schedule reaches the target "
                       "(default: %(default)s)")


def _qat_args(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("quantization-aware training")
    group.add_argument("--qat", action="store_true",
                       help="train under simulated static INT8 (uint8 activations, per-channel "
                       "int8 weights and embeddings), usually with --student, one epoch and "
                       "a small learning rate; then export and quantize with --preset static")
    group.add_argument("--qat-float-outputs", action="store_true",
                       help="QAT for the static-float-outputs layout: only each MatMul's input "
                       "and weight (and the embeddings) are rounded, outputs and residuals "
                       "stay float; then quantize with --preset static-float-outputs")


def _augment_args(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("data augmentation (TinyBERT-style)")
    group.add_argument("--augment-copies", type=int, default=0,
                       help="add N word-swapped copies of every training sentence, learnt "
                       "from the teacher's outputs only (default: 0, none); each copy is "
                       "another epoch's worth of training time")
    group.add_argument("--augment-prob", type=float,
                       default=default(AugmentConfig, "replace_prob"),
                       help="chance that a word is swapped (default: %(default)s)")
    group.add_argument("--augment-candidates", type=int,
                       default=default(AugmentConfig, "candidates"),
                       help="a word is swapped for one of its N nearest words in the "
                       "teacher's input embeddings (default: %(default)s)")


def run_finetune(args: argparse.Namespace) -> str:
    # Imported here, not at the top: the training stack (torch, transformers) takes
    # seconds to import, and `--help` or another command should not wait for it.
    from compression.training.finetune import finetune

    result = finetune(args.model, data_config(args), train_config(args), Path(args.output),
                      resume=not args.no_resume)
    if "dev_f1" in result:  # question answering: SQuAD's exact match and F1
        return (f"finetune: dev exact match {result['dev_exact_match']:.4f}, F1 "
                f"{result['dev_f1']:.4f} -> {result['model_dir']} ({result['minutes']} min)")
    micro = (f", micro-F1 {result['dev_micro_f1']:.4f} at the dev thresholds"
             if "dev_micro_f1" in result else "")
    return (f"finetune: dev accuracy {result['dev_accuracy']:.4f}, macro-F1 "
            f"{result['dev_macro_f1']:.4f}{micro} -> {result['model_dir']} "
            f"({result['minutes']} min)")


def _distill_config(args: argparse.Namespace) -> DistillConfig:
    layers = (integers(args.layers, "--layers", "teacher layer indices like 0,2,4")
              if args.layers else None)
    return DistillConfig(
        num_layers=args.layers_count, layers=layers, hidden_size=args.hidden_size,
        num_heads=args.heads, temperature=args.temperature, alpha_ce=args.alpha_ce,
        alpha_kl=args.alpha_kl, alpha_cos=args.alpha_cos, alpha_hidden=args.alpha_hidden,
        alpha_attention=args.alpha_attention, cache_teacher_logits=not args.no_cache,
    )


def run_distill(args: argparse.Namespace) -> str:
    from compression.training.distill import distill  # heavy: see run_finetune

    sparsity = (SparsityConfig(sparsity=args.sparsity, scope=args.sparsity_scope,
                               end=args.sparsity_end) if args.sparsity is not None else None)
    qat = (QatConfig(float_outputs=args.qat_float_outputs)
           if args.qat or args.qat_float_outputs else None)
    augment = (AugmentConfig(copies=args.augment_copies, replace_prob=args.augment_prob,
                             candidates=args.augment_candidates)
               if args.augment_copies else None)
    result = distill(args.teacher, data_config(args), train_config(args),
                     _distill_config(args), Path(args.output), resume=not args.no_resume,
                     sparsity=sparsity, student_ref=args.student, quantization_aware=qat,
                     augment=augment, embedding_rank=args.embedding_rank,
                     extra_teachers=args.extra_teacher)
    return (f"distill: {result['student_parameters'] / 1e6:.1f}M-parameter student, dev accuracy "
            f"{result['dev_accuracy']:.4f} -> {result['model_dir']} ({result['minutes']} min)")
