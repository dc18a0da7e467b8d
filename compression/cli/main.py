"""`python -m compression <command>`: the offline compression toolkit's command line.

Each command group is one module with `add_parsers(commands)` and a `run_*` function per
command that returns its summary line. To add a command, add its parser and run function
to a group module (or a new module listed in `COMMAND_GROUPS`); read defaults from the
config dataclasses with `arguments.default`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from compression.cli import auto, evaluation, exporting, pipeline, pruning, register, training
from compression.core.errors import CompressionError
from registry import RegistryError

DESCRIPTION = """\
Make BERT-family text classifiers smaller and faster, and publish them to the registry.

Typical flow:  finetune -> distill -> export -> quantize -> evaluate -> register,
or all of it from one config file with `pipeline CONFIG.yaml`, or with no config at all:
`auto --model M --train T --dev D --name N` searches for the smallest variant within an
accuracy budget (1 point by default) and publishes it.
"""

# In the order `--help` lists them.
COMMAND_GROUPS = (training, exporting, evaluation, register, pruning, pipeline, auto)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m compression", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in COMMAND_GROUPS:
        group.add_parsers(commands)
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
