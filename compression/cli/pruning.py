"""`prune-vocab` and `prune-structure`."""

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
    train_config,
)
from compression.cli.training import add_loss_weights
from compression.config.steps import (
    PRUNE_SCOPES,
    UNSEEN_POLICIES,
    DataConfig,
    DistillConfig,
    PruneConfig,
)
from compression.core.data import load_data


def add_parsers(commands: Any) -> None:
    _add_prune_vocab(commands)
    _add_prune_structure(commands)


def _add_prune_vocab(commands: Any) -> None:
    p = commands.add_parser(
        "prune-vocab", help="drop the tokens the task's training data never uses",
        description="Keep only the tokens seen when tokenizing the training texts, plus the "
        "special tokens and (unless --no-keep-chars) every single-character and ##character "
        "piece, so unseen words still split into characters. WordPiece, byte-level BPE "
        "(with the merges that build the kept tokens) and Unigram/SentencePiece "
        "vocabularies. Shrinks the embedding matrix and rewrites tokenizer.json "
        "consistently; writes OUTPUT/model and OUTPUT/result.json.",
    )
    p.add_argument("--model", required=True, help="fine-tuned classifier folder")
    p.add_argument("--train", required=True, help="training data whose tokens are kept")
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument("--text-column", default=default(DataConfig, "text_column"),
                   help="the data's text column (default: %(default)s)")
    p.add_argument("--label-column", default=default(DataConfig, "label_column"),
                   help="the data's label column (default: %(default)s)")
    p.add_argument("--limit-train", type=int, default=None,
                   help="use only the first N training rows")
    p.add_argument("--format", choices=("conll", "jsonl"), default=None,
                   help="a token classifier's data format (default: from the suffix, "
                   ".jsonl: JSONL, else CoNLL); the task is the model's own")
    p.add_argument("--no-keep-chars", action="store_true",
                   help="drop unseen character pieces too (unseen words become [UNK])")
    p.add_argument("--unseen", default=UNSEEN_POLICIES[0], choices=UNSEEN_POLICIES,
                   help="what a dropped token becomes: 'chars' (split into kept pieces) or "
                   "'nearest' (stays one token, sharing the embedding row of its most similar "
                   "kept token; WordPiece vocabularies only) (default: %(default)s)")
    p.add_argument("--min-count", type=int, default=1,
                   help="keep only the tokens the training texts use at least this many times "
                   "(special tokens and characters are always kept); the rarer ones are "
                   "dropped like unseen ones (default: %(default)s)")
    p.add_argument("--coverage", type=float, default=None,
                   help="instead of --min-count: keep the most frequent tokens until they make "
                   "up this share of the training texts' token occurrences, in (0, 1], e.g. "
                   "0.995 (a threshold that scales with the data; ties at the cut are kept)")
    p.set_defaults(run=run_prune_vocab)


def _add_prune_structure(commands: Any) -> None:
    p = commands.add_parser(
        "prune-structure", help="remove attention heads, FFN neurons or layers, then recover",
        description="Structured pruning: keep only the --layers given (whole encoder layers "
        "removed), score every attention head and feed-forward neuron by |dLoss/dgate| "
        "over training batches (Michel et al. 2019), keep the --heads and --ffn most "
        "important in every layer (the matrices shrink, so the model is faster in any "
        "runtime), then, with --teacher, recover accuracy by distilling from the teacher. "
        "Writes OUTPUT/pruned/model (pruned) and OUTPUT/model (recovered).",
    )
    p.add_argument("--model", required=True, help="fine-tuned classifier folder to prune")
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument("--heads", type=int, default=None,
                   help="attention heads kept per layer (refused for mpnet, whose "
                   "relative-position bias is shared by all layers)")
    p.add_argument("--ffn", type=int, default=None, help="feed-forward neurons kept per layer")
    p.add_argument("--layers", default=None,
                   help="encoder layers kept, e.g. 0,2,3,5 (the others are removed whole; "
                   "on long inputs such as QA windows depth is what width cuts cannot buy)")
    p.add_argument("--scope", default=default(PruneConfig, "scope"), choices=PRUNE_SCOPES,
                   help="per-layer: every layer keeps --heads and --ffn; global: the model "
                   "keeps that many per layer on average, the most important across layers "
                   "(at least one per layer) (default: %(default)s)")
    p.add_argument("--importance-batches", type=int,
                   default=default(PruneConfig, "importance_batches"),
                   help="training batches that score importance (default: %(default)s)")
    p.add_argument("--teacher", default=None,
                   help="fine-tuned teacher to distil from after pruning (recommended)")
    add_loss_weights(p, all_terms=False)
    add_resume(p)
    add_data_args(p)
    add_train_args(p, learning_rate=1e-4, epochs=2)
    p.set_defaults(run=run_prune_structure)


def run_prune_vocab(args: argparse.Namespace) -> str:
    # Imported here, not at the top: torch and transformers take seconds to import.
    from compression.cli.model_task import model_task
    from compression.pruning.vocabulary import prune_vocabulary

    # The model's own task picks the data layout (CoNLL/JSONL tags, SQuAD questions).
    train_texts = model_task(Path(args.model), args).texts(args.train, args, args.limit_train)
    result = prune_vocabulary(Path(args.model), Path(args.output), train_texts,
                              keep_chars=not args.no_keep_chars, unseen=args.unseen,
                              min_count=args.min_count,
                              coverage=args.coverage)
    share = result.get("coverage_achieved")  # absent from results made before coverage
    kept = "" if share is None else f" ({100 * share:.2f}% of the training texts' tokens)"
    return (f"prune-vocab: vocabulary {result['vocab_before']} -> {result['vocab_after']} "
            f"tokens{kept}, embeddings {result['embedding_parameters_before'] / 1e6:.1f}M -> "
            f"{result['embedding_parameters_after'] / 1e6:.1f}M parameters -> "
            f"{result['model_dir']}")


def run_prune_structure(args: argparse.Namespace) -> str:
    # Imported here, not at the top: torch and transformers take seconds to import.
    from compression.pruning.structured import prune_structure
    from compression.training.distill import distill

    config = PruneConfig(heads=args.heads, ffn=args.ffn,
                         importance_batches=args.importance_batches, scope=args.scope,
                         layers=args.layers)
    data = data_config(args)
    splits = load_data(data)
    output = Path(args.output)
    pruned = prune_structure(Path(args.model), output / "pruned", splits.train.texts,
                             splits.labels.encode(splits.train), config, args.max_length,
                             data=data)
    summary = (f"prune-structure: {pruned['parameters_before'] / 1e6:.1f}M -> "
               f"{pruned['parameters_after'] / 1e6:.1f}M parameters")
    if not args.teacher:
        return f"{summary} -> {pruned['model_dir']} (not retrained: pass --teacher to recover)"
    recovered = distill(args.teacher, data, train_config(args),
                        DistillConfig(temperature=args.temperature, alpha_ce=args.alpha_ce,
                                      alpha_kl=args.alpha_kl),
                        output, resume=not args.no_resume, student_ref=pruned["model_dir"])
    return (f"{summary}, dev accuracy {recovered['dev_accuracy']:.4f} after recovery -> "
            f"{recovered['model_dir']} ({recovered['minutes']} min)")
