"""`register`: publish an ONNX folder to the registry."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from compression.cli.arguments import default
from compression.config.steps import DataConfig
from compression.register import register


def add_parsers(commands: Any) -> None:
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
    p.add_argument("--registry", default="models",
                   help="the registry's root folder (default: %(default)s)")
    p.add_argument("--metrics", default=None, help="JSON file of metrics for the manifest")
    p.add_argument("--max-length", type=int, default=default(DataConfig, "max_length"),
                   help="the service truncates to this many tokens (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="replace an existing version")
    p.set_defaults(run=run_register)


def run_register(args: argparse.Namespace) -> str:
    metrics = json.loads(Path(args.metrics).read_text()) if args.metrics else {}
    path = register(Path(args.model), Path(args.registry), args.name,
                    [x.strip() for x in args.labels.split(",")], args.max_length,
                    metrics, version=args.version, force=args.force)
    return f"register: published {path}"
