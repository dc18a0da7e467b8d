"""`evaluate`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from compression.cli.arguments import StrDefault, add_columns, add_window_args, given, integers
from compression.core.data import QA_TASK, TOKEN_TASK, load_split
from compression.core.errors import CompressionError, ConfigError
from compression.core.labels import label_space
from compression.core.squad import load_squad_split

TEXT_TASK = "text-classification"


def add_parsers(commands: Any) -> None:
    p = commands.add_parser(
        "evaluate", help="compare models side by side: accuracy, size, latency",
        description="Evaluate PyTorch folders, .onnx files and registry versions on one "
        "dataset in one process: accuracy, macro-F1 (and micro-F1 with --multi-label, at "
        "thresholds chosen on this data), agreement with the first model, size, "
        "batch-1 latency p50/p95, batch-32 throughput. Writes evaluation.md/.json/.png.",
    )
    p.add_argument("models", nargs="+", help="model folders/files; the first is the reference")
    p.add_argument("--data", required=True, help="labelled evaluation data")
    p.add_argument("--train", default=None, help="training data, to fix the label order")
    p.add_argument("--output", default="runs/evaluation",
                   help="folder for evaluation.md/.json/.png (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads (default: 2)")
    p.add_argument("--latency-threads", default="",
                   help="also measure batch-1 latency at these intra-op thread counts, e.g. "
                   "1,2, and report the fastest (a small model is not always faster on "
                   "more threads); default: --threads only")
    p.add_argument("--limit", type=int, default=None, help="first N rows only")
    p.add_argument("--task", choices=(TEXT_TASK, TOKEN_TASK, QA_TASK),
                   default=StrDefault(TEXT_TASK),
                   help="labelled texts; tagged sentences (CoNLL columns or JSONL) scored "
                   "by entity precision, recall and F1; or questions in SQuAD v1.1 JSON "
                   "scored by exact match and F1 (default: the first model's task, else "
                   "%(default)s)")
    p.add_argument("--format", choices=("conll", "jsonl"), default=None,
                   help="tagged sentences' file format (default: from the suffix, .jsonl: "
                   "JSONL, else CoNLL)")
    add_window_args(p, recorded=True)
    add_columns(p, labels_file=True, recorded=True)
    p.set_defaults(run=run_evaluate)


def thread_counts(text: str) -> tuple[int, ...]:
    example = "thread counts like 1,2"
    counts = integers(text, "--latency-threads", example) if text else ()
    if any(n < 1 for n in counts):
        raise CompressionError(f"--latency-threads: write {example}; got {text!r}")
    return counts


def evaluated_task(args: argparse.Namespace) -> str:
    """--task, else the reference model's; one line when the models cannot take it."""
    from compression.cli.model_task import task_name

    found = task_name(Path(args.models[0])) or TEXT_TASK
    if not given(args.task):
        return found
    if args.task != found and found != TEXT_TASK:
        raise ConfigError(f"evaluate: --task {args.task}, but {args.models[0]} is a "
                          f"{found} model")
    return str(args.task)  # given: a model with no record may still be of another task


def _tagged(args: argparse.Namespace) -> tuple[list[str], list[Any], Any]:
    """Tagged sentences, their tags encoded in the order of --labels-file, else of the
    training data's tags (--train), else of the evaluated data's."""
    from compression.core.conll import load_token_split
    from compression.core.tags import TagSpace
    from compression.tasks.registry import TOKEN_CLASSIFICATION

    dev = load_token_split(args.data, args.format, args.limit)
    labels_from = load_token_split(args.train, args.format) if args.train else dev
    space = TagSpace.from_train(labels_from, labels_file=args.labels_file)
    return dev.texts, space.encode(dev), TOKEN_CLASSIFICATION.for_labels(list(space.names))


def run_evaluate(args: argparse.Namespace) -> str:
    # Imported here, not at the top: the runners and the chart pull in onnxruntime and
    # matplotlib, which `--help` and the other commands should not wait for.
    from compression.cli.model_task import model_task
    from compression.evaluation.evaluate import evaluate
    from compression.evaluation.report import markdown_table, write_reports
    from compression.evaluation.runners import Variant
    from compression.tasks.registry import task_for_data

    name = evaluated_task(args)
    # A question answerer's windows: as given, else as recorded, else the defaults.
    checked = model_task(Path(args.models[0]), args, name if name == QA_TASK else None)
    if name == QA_TASK:
        dev = load_squad_split(args.data, args.limit)
        texts, labels, task = dev.texts, dev.answers, checked.task
    elif name == TOKEN_TASK:
        texts, labels, task = _tagged(args)
    else:
        dev = load_split(args.data, args.text_column, args.label_column, args.limit,
                         args.multi_label)
        labels_from = (load_split(args.train, args.text_column, args.label_column,
                                  multi_label=args.multi_label) if args.train else dev)
        space = label_space(labels_from, labels_file=args.labels_file,
                            multi_label=args.multi_label)
        texts, labels, task = dev.texts, space.encode(dev), task_for_data(args)
    variants = [Variant.from_path(Path(p)) for p in args.models]
    reports = evaluate(variants, texts, labels, checked.max_length, threads=args.threads,
                       rounds=args.rounds, latency_threads=thread_counts(args.latency_threads),
                       task=task)
    paths = write_reports(reports, Path(args.output))
    print(markdown_table(reports))
    return (f"evaluate: {len(reports)} variants -> {paths['markdown']}, {paths['json']}, "
            f"{paths['chart']}")
