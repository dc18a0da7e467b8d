"""`pipeline` and `bench`: the whole chain from one config file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parsers(commands: Any) -> None:
    p = commands.add_parser(
        "pipeline", help="run the whole chain from a YAML/TOML config",
        description="Fine-tune (or take a fine-tuned teacher), distil, export, quantize, "
        "evaluate and register, as the config says. Finished steps with the same config are "
        "reused, so an interrupted run continues where it stopped.",
    )
    p.add_argument("config", help="pipeline config, e.g. examples/sst2.yaml")
    p.add_argument("--force", action="store_true", help="replace existing registry versions")
    add_budget_arguments(p, default=None)
    p.set_defaults(run=run_pipeline)

    p = commands.add_parser(
        "bench", help="benchmark every variant of a pipeline; write docs/benchmarks.md",
        description="Measure, in one process, the teacher in PyTorch fp32 and every ONNX "
        "variant the pipeline produced (running missing steps first), and write a Markdown "
        "report with the machine, the command, the table and a chart.",
    )
    p.add_argument("config", nargs="?", default="examples/sst2.yaml")
    p.add_argument("--output", default="docs/benchmarks.md",
                   help="Markdown report to write its section into (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    p.add_argument("--register", action="store_true",
                   help="also publish the config's register.variants with this run's metrics")
    p.add_argument("--force", action="store_true", help="replace existing registry versions")
    p.set_defaults(run=run_bench)


def add_budget_arguments(p: argparse.ArgumentParser, default: float | None) -> None:
    """--max-drop and --prefer: the accuracy budget (None: the config's register section)."""
    p.add_argument("--max-drop", type=float, default=default, metavar="POINTS",
                   help="publish only variants at most this many points of the main dev "
                   "metric below the teacher" + (" (default: %(default)s)" if default is not
                                                  None else " (default: register.max_drop, "
                                                  "else 1.0)"))
    p.add_argument("--prefer", choices=("smallest", "fastest"), default=None,
                   help="of the variants within budget, publish the smallest (model file) or "
                   "the fastest (batch-1 latency) (default: register.prefer, else smallest)")


# The runs import the whole toolkit (torch, transformers, onnxruntime) when called, not at
# the top: `--help` and the other commands should not wait for it.

def run_pipeline(args: argparse.Namespace) -> str:
    from compression.evaluation.report import markdown_table
    from compression.pipeline import Pipeline, PipelineConfig

    config = with_budget(PipelineConfig.load(Path(args.config)), args.max_drop, args.prefer)
    result = Pipeline(config, force=args.force).run()
    print(markdown_table(result["reports"]))
    print(result["reason"])
    return (f"pipeline: published {result['published'] or 'nothing'}; evaluation in "
            f"{result['eval_dir']}")


def with_budget(config: Any, max_drop: float | None, prefer: str | None) -> Any:
    """`config` with the command line's budget over its register section's."""
    from dataclasses import replace

    from compression.budget import Budget

    budget = config.register_budget
    return replace(config, register_budget=Budget(
        budget.max_drop if max_drop is None else max_drop,
        prefer or budget.prefer, force=budget.force))


def run_bench(args: argparse.Namespace) -> str:
    from compression.bench import run_benchmark

    path = run_benchmark(Path(args.config), Path(args.output), rounds=args.rounds,
                         register=args.register, force=args.force)
    return f"bench: wrote {path}"
