"""`register`: publish an ONNX folder to the registry."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from compression.cli.arguments import IntDefault, default
from compression.config.steps import DataConfig
from compression.core.errors import CompressionError, ConfigError
from compression.register import register


def add_parsers(commands: Any) -> None:
    p = commands.add_parser(
        "register", help="publish an ONNX folder as a new registry version",
        description="Copy model.onnx and tokenizer.json into REGISTRY/NAME/VERSION with a "
        "manifest (labels, metrics, sha256 of every file, lineage). Atomic; refuses an "
        "existing version unless --force. A multi-label model (trained with --multi-label, "
        "or --multi-label here) is published with a threshold per label: --thresholds, or "
        "those its training step chose on dev. A question answerer (fine-tuned with --task "
        "question-answering) is published with its task and the windows it was trained "
        "with; its labels are start,end.",
    )
    p.add_argument("--model", required=True, help="folder with model.onnx and tokenizer.json")
    p.add_argument("--name", required=True)
    p.add_argument("--labels", required=True, help="label names in class order, e.g. "
                   "negative,positive (a question answerer's: start,end)")
    p.add_argument("--version", default=None, help="(default: the next number)")
    p.add_argument("--registry", default="models",
                   help="the registry's root folder (default: %(default)s)")
    p.add_argument("--metrics", default=None, help="JSON file of metrics for the manifest")
    p.add_argument("--max-length", type=int,
                   default=IntDefault(default(DataConfig, "max_length")),
                   help="the service truncates to this many tokens (default: %(default)s; "
                   "a question answerer's own when not given)")
    p.add_argument("--force", action="store_true", help="replace an existing version")
    p.add_argument("--multi-label", action="store_true",
                   help="the model is multi-label: a sigmoid per label (default: as its "
                   "training step recorded, else single-label)")
    p.add_argument("--thresholds", default=None,
                   help="multi-label: each label's decision threshold in (0, 1), in the "
                   "order of --labels, e.g. 0.4,0.5,0.35 (default: those the training "
                   "step chose on dev)")
    p.set_defaults(run=run_register)


def _thresholds(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(x) for x in text.split(",")]
    except ValueError as exc:
        raise CompressionError(f"--thresholds: write numbers in (0, 1) separated by commas, "
                               f"one per label; got {text!r}") from exc


def _labels(args: argparse.Namespace, question_answerer: bool) -> list[str]:
    """--labels; a question answerer's are its head's two outputs, start and end."""
    from compression.core.squad import SPAN_LABELS

    labels = [x.strip() for x in args.labels.split(",")]
    if question_answerer and labels != list(SPAN_LABELS):
        raise ConfigError(f"register: {args.model} is a question answerer: its labels are "
                          f"{','.join(SPAN_LABELS)} (its start and end logits), not "
                          f"{','.join(labels)}")
    return labels


def run_register(args: argparse.Namespace) -> str:
    from compression.cli.model_task import model_task

    checked = model_task(Path(args.model), args)  # a question answerer's own max length
    labels = _labels(args, checked.name == "question-answering")
    metrics = json.loads(Path(args.metrics).read_text()) if args.metrics else {}
    path = register(Path(args.model), Path(args.registry), args.name, labels,
                    checked.max_length,
                    metrics, version=args.version, force=args.force,
                    label_setup="multi-label" if args.multi_label or args.thresholds else None,
                    thresholds=_thresholds(args.thresholds))
    return f"register: published {path}"
