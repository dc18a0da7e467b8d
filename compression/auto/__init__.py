"""`python -m compression auto`: from a model and labelled data to a published version
within an accuracy budget, no config to write.

The run fine-tunes a teacher when the model is not one already, searches the space of
`auto.space` cheapest first under the time budget (`auto.search`), evaluates every
finished candidate side by side with the teacher, publishes the best within the budget on
the preferred axis and writes the frontier table and chart beside the evaluation. The
data is read once, here, and handed to every step of the search.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from compression.auto.finalists import ScoredVariant, finalists, plan_rounds
from compression.auto.frontier import frontier_rows, frontier_table, plot_frontier
from compression.auto.search import AutoSearch, Clock
from compression.auto.space import QUANT_LADDER, TEACHER_TRAIN
from compression.budget import Budget, BudgetMissed
from compression.config.pipeline_file import PipelineConfig
from compression.config.steps import QUANT_PRESETS, DataConfig
from compression.core.data import LabelledData, load_data
from compression.core.errors import ConfigError
from compression.models.loading import load_config

log = logging.getLogger(__name__)

# The final side-by-side evaluation and publishing get this share of the time budget.
EVALUATION_SHARE = 0.15
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$")


def parse_duration(text: str) -> float:
    """Seconds in "45m", "1h30m", "90s" or a bare number of minutes; ConfigError else."""
    text = str(text).strip().lower()
    try:
        seconds = float(text) * 60
    except ValueError:
        match = _DURATION.match(text)
        if not text or match is None:
            raise ConfigError(f"--time-budget: write e.g. 45m, 1h30m or 90s; got {text!r}") \
                from None
        hours, minutes, secs = (float(g) if g else 0.0 for g in match.groups())
        seconds = 3600 * hours + 60 * minutes + secs
    if not 0 < seconds < float("inf"):
        raise ConfigError(f"--time-budget: must be positive, got {text!r}")
    return seconds


@dataclass(frozen=True)
class AutoRequest:
    model: str  # a pretrained encoder or a fine-tuned teacher: folder, hub id or package:
    data: DataConfig
    name: str
    registry: Path = Path("models")
    work_dir: Path | None = None  # default runs/<name>
    budget: Budget = field(default_factory=Budget)
    time_budget_s: float | None = None
    quantizations: tuple[str, ...] = QUANT_LADDER
    eval_rounds: int = 3
    routes: bool = True


@dataclass
class AutoResult:
    published: list[Path]
    reason: str
    frontier: Path
    chart: Path
    skipped: list[str]
    unfinished: list[str] = field(default_factory=list)  # cut off mid-training by the deadline


def is_teacher(model: str, labels: list[str], token_task: bool | str) -> bool:
    """Whether `model` is already fine-tuned on these labels (its head's labels are the
    data's), so the search starts from it instead of fine-tuning it. `token_task`: True
    for token classification, or the data's task name (question-answering: a span head)."""
    config = load_config(model)
    head = ("ForQuestionAnswering" if token_task == "question-answering"
            else "ForTokenClassification" if token_task is True
            or token_task == "token-classification" else "ForSequenceClassification")
    if not any(a.endswith(head) for a in (config.architectures or [])):
        return False
    return sorted(str(v) for v in (config.id2label or {}).values()) == sorted(labels)


def pipeline_config(request: AutoRequest, splits: LabelledData | None = None) -> PipelineConfig:
    """The pipeline config every step of the search runs under (its students are set per
    step): the teacher as given or to fine-tune, the quantization ladder, the budget.
    `splits`: `request.data` already read (read here otherwise)."""
    unknown = [q for q in request.quantizations if q not in QUANT_PRESETS]
    if unknown:
        raise ConfigError(f"--quantization: unknown preset(s) {unknown}; choose from "
                          f"{sorted(QUANT_PRESETS)}")
    labels = list((splits or load_data(request.data)).labels.names)
    teacher: dict[str, Any] = ({"finetuned": request.model}
                               if is_teacher(request.model, labels, request.data.task or "")
                               else {"pretrained": request.model, "train": dict(TEACHER_TRAIN)})
    data = {k: v for k, v in asdict(request.data).items() if v is not None}
    return PipelineConfig.from_dict({
        "name": request.name,
        "work_dir": str(request.work_dir or Path("runs") / request.name),
        "registry": str(request.registry),
        "data": data,
        "teacher": teacher,
        "quantize": [{"name": q, **QUANT_PRESETS[q]} for q in request.quantizations],
        "evaluate": {"rounds": request.eval_rounds},
        "register": {"max_drop": request.budget.max_drop, "prefer": request.budget.prefer,
                     "routes": request.routes},
    })


def run_auto(request: AutoRequest, force: bool = False) -> AutoResult:
    """Search, evaluate side by side, publish the winner (BudgetMissed, after writing the
    frontier, when no variant is within the budget)."""
    started = time.monotonic()
    splits = load_data(request.data)  # the one read of the data: every step shares it
    config = pipeline_config(request, splits)
    search_s = (None if request.time_budget_s is None
                else request.time_budget_s * (1 - EVALUATION_SHARE))
    search = AutoSearch(config, Clock(search_s), splits=splits)
    onnx_dirs = search.search()
    pipeline = search.pipeline
    pipeline.force = force
    teacher_dir = search.state.teacher["model"]
    left_s = (float("inf") if request.time_budget_s is None
              else request.time_budget_s - (time.monotonic() - started))
    scored = search.scored()
    final, rounds = _final_evaluation(search, scored, left_s, request.eval_rounds)
    final_dirs = {v.name: onnx_dirs[v.name] for v in final}
    reports = pipeline.evaluate(teacher_dir, final_dirs, rounds=rounds)
    labels = list(search.splits.labels.names)
    out = config.work_dir / "auto"
    others = [s for s in scored if s not in final]
    try:
        published = pipeline.register(reports, final_dirs, labels)
    except BudgetMissed:
        _write_frontier(reports, others, search, None, out)  # the misses are worth a look
        raise
    table, chart = _write_frontier(reports, others, search, pipeline.selected[0], out)
    return AutoResult(published=published, reason=pipeline.selection_reason, frontier=table,
                      chart=chart, skipped=search.skipped, unfinished=search.unfinished)


def _final_evaluation(search: AutoSearch, scored: list[ScoredVariant], left_s: float,
                      wanted_rounds: int) -> tuple[list[ScoredVariant], int]:
    """Of the search's `scored` variants, those the final evaluation measures and its
    rounds, to fit `left_s`."""
    chosen = finalists(scored, search.config.register_budget)
    teacher_s = search.state.teacher.get("eval_seconds") or max(
        (s.eval_s or 0.0 for s in scored), default=0.0)
    final, rounds = plan_rounds(chosen, teacher_s, left_s, wanted_rounds, scored)
    log.info("auto: the final evaluation measures %d of %d variants over %d round(s): %s",
             len(final), len(scored), rounds, ", ".join(v.name for v in final))
    return final, rounds


def _write_frontier(reports: list[Any], others: list[ScoredVariant], search: AutoSearch,
                    winner: str | None, out: Path) -> tuple[Path, Path]:
    """`others`: the variants the final evaluation did not measure (their search figures)."""
    budget, metric = search.config.register_budget, search.metric
    rows = frontier_rows(reports, metric, budget, others)
    out.mkdir(parents=True, exist_ok=True)
    table = out / "frontier.md"
    skipped = "".join(f"- skipped: {s}\n" for s in search.skipped) + "".join(
        f"- unfinished: {u}\n" for u in search.unfinished)
    table.write_text(f"# {search.config.name}: the search's frontier (dev)\n\n"
                     f"Budget: at most {budget.max_drop:g} points of dev {metric} below the "
                     f"teacher ({100 * search.teacher_score:.2f}); prefer {budget.prefer}.\n\n"
                     + frontier_table(rows, metric, winner) + ("\n" + skipped if skipped else ""))
    chart = plot_frontier(rows, budget, winner, out / "frontier.png",
                          f"{search.config.name}: {len(rows)} variants, budget "
                          f"{budget.max_drop:g} points")
    log.info("auto: frontier in %s and %s", table, chart)
    return table, chart


__all__ = ["AutoRequest", "AutoResult", "parse_duration", "pipeline_config", "run_auto"]
