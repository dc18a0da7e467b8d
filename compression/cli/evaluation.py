"""`evaluate`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from compression.cli.arguments import add_columns, add_window_args, data_config, integers
from compression.core.data import load_split
from compression.core.errors import CompressionError
from compression.core.labels import label_space
from compression.core.squad import load_squad_split


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
    p.add_argument("--task", choices=("text-classification", "question-answering"),
                   default="text-classification",
                   help="labelled texts, or questions in SQuAD v1.1 JSON scored by exact "
                   "match and F1 (then --data is the JSON file) (default: %(default)s)")
    add_window_args(p)
    add_columns(p, labels_file=True)
    p.set_defaults(run=run_evaluate)


def thread_counts(text: str) -> tuple[int, ...]:
    example = "thread counts like 1,2"
    counts = integers(text, "--latency-threads", example) if text else ()
    if any(n < 1 for n in counts):
        raise CompressionError(f"--latency-threads: write {example}; got {text!r}")
    return counts


def run_evaluate(args: argparse.Namespace) -> str:
    # Imported here, not at the top: the runners and the chart pull in onnxruntime and
    # matplotlib, which `--help` and the other commands should not wait for.
    from compression.evaluation.evaluate import evaluate
    from compression.evaluation.report import markdown_table, write_reports
    from compression.evaluation.runners import Variant
    from compression.tasks.registry import task_for_data

    if args.task == "question-answering":
        data = data_config(argparse.Namespace(**{**vars(args), "train": args.data,
                                                 "dev": args.data, "dev_fraction": None,
                                                 "dev_seed": 0, "label_names": None,
                                                 "limit_train": None, "limit_dev": None}))
        dev = load_squad_split(args.data, args.limit)
        texts, labels, task = dev.texts, dev.answers, task_for_data(data).for_data(data)
    else:
        dev = load_split(args.data, args.text_column, args.label_column, args.limit,
                         args.multi_label)
        labels_from = (load_split(args.train, args.text_column, args.label_column,
                                  multi_label=args.multi_label) if args.train else dev)
        space = label_space(labels_from, labels_file=args.labels_file,
                            multi_label=args.multi_label)
        texts, labels, task = dev.texts, space.encode(dev), task_for_data(args)
    variants = [Variant.from_path(Path(p)) for p in args.models]
    reports = evaluate(variants, texts, labels, args.max_length, threads=args.threads,
                       rounds=args.rounds, latency_threads=thread_counts(args.latency_threads),
                       task=task)
    paths = write_reports(reports, Path(args.output))
    print(markdown_table(reports))
    return (f"evaluate: {len(reports)} variants -> {paths['markdown']}, {paths['json']}, "
            f"{paths['chart']}")
