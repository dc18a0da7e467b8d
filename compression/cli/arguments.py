"""Argument groups the commands share, with defaults read from the config dataclasses
(one place for a default: the config), and the helpers that turn flags into configs."""

from __future__ import annotations

import argparse
from dataclasses import MISSING, fields
from typing import Any

from compression.config.scaling import MAX_EPOCHS, MIN_EPOCHS, TARGET_UPDATES
from compression.config.steps import AUTO, DataConfig, TrainConfig
from compression.core.data import load_split
from compression.core.errors import CompressionError

RESUME_HELP = "start over; earlier checkpoints move to OUTPUT/checkpoints/stale-N"


def default(config: type, name: str) -> Any:
    """The declared default of field `name` of the config dataclass `config`."""
    found = next(f for f in fields(config) if f.name == name)
    if found.default is MISSING:
        raise TypeError(f"{config.__name__}.{name} has no plain default")
    return found.default


class IntDefault(int):
    """A flag's default, told apart from the same number given on the command line: where
    it is not given, a model's own setting may stand in (`cli.model_task`)."""


class StrDefault(str):
    """A flag's default text, told apart from the same text given (see IntDefault)."""


def given(value: Any) -> bool:
    """Whether a flag's value was given (not its IntDefault or StrDefault)."""
    return value is not None and not isinstance(value, IntDefault | StrDefault)


RECORDED = "; a question answerer's own when not given"


def add_columns(parser: argparse.ArgumentParser | Any, labels_file: bool = False,
                recorded: bool = False) -> None:
    """--max-length, --text-column, --label-column, --multi-label (and with `labels_file`
    --labels-file): how a data file is read and cut. With `recorded` a question
    answerer's own max length stands in for --max-length's default."""
    length = default(DataConfig, "max_length")
    parser.add_argument("--max-length", type=int,
                        default=IntDefault(length) if recorded else length,
                        help="truncate to this many tokens (default: %(default)s"
                        f"{RECORDED if recorded else ''})")
    parser.add_argument("--text-column", default=default(DataConfig, "text_column"),
                        help="the data's text column (default: %(default)s)")
    parser.add_argument("--label-column", default=default(DataConfig, "label_column"),
                        help="the data's label column (default: %(default)s)")
    parser.add_argument("--multi-label", action="store_true",
                        help="each row holds any number of labels, comma-separated names "
                        "(e.g. --label-column labels): a sigmoid per label, thresholds "
                        "chosen on dev, micro- and macro-F1")
    if not labels_file:
        return
    parser.add_argument("--labels-file", default=None,
                        help="the labels, one a line, in the head's order (default: the "
                        "training data's, sorted); a data label it lacks is an error")


def add_data_args(parser: argparse.ArgumentParser) -> None:
    """The `data` group: a labelled train/dev pair (DataConfig)."""
    group = parser.add_argument_group("data")
    group.add_argument("--train", required=True,
                       help="training data: .tsv, .csv or .jsonl file, or hf:PATH[:CONFIG]:SPLIT")
    group.add_argument("--dev", default=None,
                       help="dev data, used for model selection (or --dev-fraction)")
    group.add_argument("--dev-fraction", type=float, default=None,
                       help="no dev file: carve this fraction of --train, stratified by "
                       "label, as the dev split (e.g. 0.1)")
    group.add_argument("--dev-seed", type=int, default=default(DataConfig, "dev_seed"),
                       help="draws the rows of --dev-fraction (default: %(default)s)")
    add_columns(group, labels_file=True)
    group.add_argument("--task", choices=("text-classification", "token-classification",
                                           "question-answering"),
                       default="text-classification",
                       help="a label per text, a tag per word (NER: CoNLL or JSONL files), "
                       "or an answer span per question (SQuAD v1.1 JSON) "
                       "(default: %(default)s)")
    add_window_args(group)
    group.add_argument("--format", choices=("conll", "jsonl"), default=None,
                       help="token data's file format (default: from the suffix, .jsonl: "
                       "JSONL, else CoNLL)")
    group.add_argument("--label-names", default=None,
                       help='display names for raw labels, e.g. "0=negative,1=positive"')
    group.add_argument("--limit-train", type=int, default=None,
                       help="use only the first N training rows (quick trials)")
    group.add_argument("--limit-dev", type=int, default=None,
                       help="use only the first N dev rows (quick trials)")


def add_window_args(group: Any, recorded: bool = False) -> None:
    """Question answering's windows and answer search (DataConfig's QA fields); with
    `recorded` the model's own stand in for the defaults (`cli.model_task`)."""
    for flag, name, text in (
            ("--doc-stride", "doc_stride", "question-answering: tokens two neighbouring "
             "windows of a long context share"),
            ("--max-question-length", "max_question_length", "question-answering: tokens "
             "of a question kept"),
            ("--max-answer-length", "max_answer_length", "question-answering: tokens of an "
             "answer, at most"),
            ("--n-best", "n_best", "question-answering: starts and ends tried per window")):
        value = default(DataConfig, name)
        group.add_argument(flag, type=int, default=IntDefault(value) if recorded else value,
                           help=f"{text} (default: %(default)s{RECORDED if recorded else ''})")


def add_train_args(parser: argparse.ArgumentParser, learning_rate: float | None = None,
                   epochs: float | None = None) -> None:
    """The `optimisation` group (TrainConfig); a command may start from another learning
    rate or epoch count than the config's."""
    group = parser.add_argument_group("optimisation")
    group.add_argument("--epochs", type=epochs_value,
                       default=epochs or default(TrainConfig, "epochs"),
                       help=f"training epochs, or {AUTO}: enough for about {TARGET_UPDATES} "
                       f"optimiser steps over the training set, {MIN_EPOCHS} to {MAX_EPOCHS} "
                       "epochs (default: %(default)s)")
    group.add_argument("--lr", type=float,
                       default=learning_rate or default(TrainConfig, "learning_rate"),
                       help="peak learning rate (default: %(default)s)")
    group.add_argument("--batch-size", type=int, default=default(TrainConfig, "batch_size"),
                       help="halved automatically on out-of-memory (default: %(default)s)")
    group.add_argument("--warmup", type=float, default=default(TrainConfig, "warmup"),
                       help="warm-up fraction of steps (default: %(default)s)")
    group.add_argument("--seed", type=int, default=default(TrainConfig, "seed"),
                       help="seeds the head, data order and dropout (default: %(default)s)")
    group.add_argument("--max-steps", type=int, default=default(TrainConfig, "max_steps"),
                       help="stop after N steps (smoke runs)")
    group.add_argument("--bf16", action="store_true",
                       help="bfloat16 autocast: ~2x faster on GPUs and AVX512-BF16/AMX CPUs")


def epochs_value(text: str) -> float | str:
    """--epochs: a number, or `auto` (resolved from the training set's size)."""
    if text.strip().lower() == AUTO:
        return AUTO
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"use a number or {AUTO}, got {text!r}") from None


def add_resume(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-resume", action="store_true", help=RESUME_HELP)


def label_names(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    pairs = [item.split("=", 1) for item in text.split(",")]
    if any(len(p) != 2 for p in pairs):
        raise CompressionError(
            f"--label-names: write RAW=NAME pairs separated by commas, got {text!r}"
        )
    return {raw.strip(): name.strip() for raw, name in pairs}


def data_config(args: argparse.Namespace) -> DataConfig:
    return DataConfig(
        train=args.train, dev=args.dev, text_column=args.text_column,
        label_column=args.label_column, label_names=label_names(args.label_names),
        max_length=args.max_length, limit_train=args.limit_train, limit_dev=args.limit_dev,
        dev_fraction=args.dev_fraction, dev_seed=args.dev_seed, multi_label=args.multi_label,
        labels_file=args.labels_file,
        task=None if getattr(args, "task", None) in (None, "text-classification") else args.task,
        format=getattr(args, "format", None),
        **{name: getattr(args, name) for name in QA_FIELDS if hasattr(args, name)},
    )


QA_FIELDS = ("doc_stride", "max_question_length", "max_answer_length", "n_best")


def train_config(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        epochs=args.epochs, learning_rate=args.lr, batch_size=args.batch_size,
        warmup=args.warmup, seed=args.seed, max_steps=args.max_steps, bf16=args.bf16,
    )


def integers(text: str, option: str, example: str) -> tuple[int, ...]:
    """Comma-separated integers from a command-line option, or a one-line error."""
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError as exc:
        raise CompressionError(f"{option}: write {example}; got {text!r}") from exc


def texts(path: str, args: argparse.Namespace, limit: int | None = None) -> list[str]:
    """The texts of a data file, read with the command's --text-column/--label-column."""
    return load_split(path, args.text_column, args.label_column, limit,
                      getattr(args, "multi_label", False)).texts
