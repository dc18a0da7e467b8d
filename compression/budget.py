"""The accuracy budget: which variant a run may publish.

A variant is within budget when its main dev metric (accuracy; macro-F1 for multi-label;
entity micro-F1 for token classification) is at most `max_drop` points below the
teacher's, measured in the same evaluation. Among those, the preferred axis picks:
"smallest" (model file, then batch-1 latency) or "fastest" (the reverse). The accuracy is
the user's promise, so an explicitly listed variant over budget is refused unless forced,
and the manifest records that it was.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from compression.core.errors import BudgetMissed, ConfigError
from compression.evaluation.report import VariantReport

PREFERENCES = ("smallest", "fastest")
DEFAULT_MAX_DROP = 1.0
DEFAULT_PREFER = "smallest"
# The plain fp32 export of the teacher is the baseline itself, not a compressed variant.
BASELINE_VARIANTS = frozenset({"teacher-fp32"})

__all__ = ["Budget", "BudgetMissed", "Selection", "check_listed", "choose", "drop_points"]


def check_max_drop(value: Any, where: str = "max_drop") -> float:
    """`value` as a float in [0, 100] points, else a one-line ConfigError."""
    try:
        drop = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: a number of points is needed, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(drop) or not 0 <= drop <= 100:
        raise ConfigError(f"{where}: must be between 0 and 100 points, got {value!r}")
    return drop


def check_prefer(value: Any, where: str = "prefer") -> str:
    if value not in PREFERENCES:
        raise ConfigError(f"{where}: one of {list(PREFERENCES)}, got {value!r}")
    return str(value)


@dataclass(frozen=True)
class Budget:
    max_drop: float = DEFAULT_MAX_DROP  # points of the main dev metric below the teacher
    prefer: str = DEFAULT_PREFER
    force: bool = False  # publish listed variants even over budget (recorded as forced)

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_drop", check_max_drop(self.max_drop))
        check_prefer(self.prefer)


def drop_points(teacher: VariantReport, variant: VariantReport, metric: str) -> float:
    """How many points of `metric` the variant is below the teacher (negative: above)."""
    return 100 * (_score(teacher, metric) - _score(variant, metric))


def _score(report: VariantReport, metric: str) -> float:
    value = getattr(report, metric)
    return float("nan") if value is None else float(value)


@dataclass(frozen=True)
class Selection:
    """What a run publishes under a budget, and the record each manifest keeps of it."""

    chosen: list[VariantReport]
    records: dict[str, dict[str, Any]]  # variant name -> the manifest's `budget`
    reason: str  # one line: which and why


def _describe(r: VariantReport, drop: float) -> str:
    return (f"{r.name} ({-drop:+.2f} points vs the teacher, {r.size_mb:.1f} MB, "
            f"{r.latency_p50_ms:.2f} ms at batch 1)")


def _order(prefer: str) -> Any:
    if prefer == "smallest":
        return lambda r: (r.size_mb, r.latency_p50_ms)
    return lambda r: (r.latency_p50_ms, r.size_mb)


def _record(budget: Budget, metric: str, teacher: VariantReport, drop: float,
            chosen_by: str, forced: bool = False) -> dict[str, Any]:
    return {"metric": f"dev_{metric}", "max_drop": budget.max_drop, "drop": round(drop, 4),
            "teacher": _score(teacher, metric), "chosen_by": chosen_by, "forced": forced}


def choose(reports: Sequence[VariantReport], teacher: VariantReport, metric: str,
           budget: Budget, candidates: Sequence[str]) -> Selection:
    """The best variant on `budget.prefer` among `candidates` within the budget;
    BudgetMissed naming the nearest miss when none is."""
    pool = [r for r in reports if r.name in candidates and r.name not in BASELINE_VARIANTS]
    drops = {r.name: drop_points(teacher, r, metric) for r in pool}
    within = [r for r in pool if drops[r.name] <= budget.max_drop]  # NaN is never within
    if not within:
        missed = [r for r in pool if not math.isnan(drops[r.name])]
        nearest = min(missed, key=lambda r: drops[r.name], default=None)
        near = f"; nearest miss: {_describe(nearest, drops[nearest.name])}" if nearest else ""
        raise BudgetMissed(
            f"register: none of {len(pool)} variant(s) is within {budget.max_drop:g} points "
            f"of the teacher's dev {metric} ({100 * _score(teacher, metric):.2f}){near}; "
            "nothing published. Raise register.max_drop (--max-drop), or list a variant "
            "in register.variants with force: true")
    best = min(within, key=_order(budget.prefer))
    reason = (f"register: {_describe(best, drops[best.name])} is the {budget.prefer} of "
              f"{len(within)} of {len(pool)} variant(s) within {budget.max_drop:g} points "
              f"of the teacher's dev {metric}")
    record = _record(budget, metric, teacher, drops[best.name], f"budget:{budget.prefer}")
    return Selection(chosen=[best], records={best.name: record}, reason=reason)


def check_listed(reports: Sequence[VariantReport], teacher: VariantReport, metric: str,
                 budget: Budget, listed: Sequence[str]) -> Selection:
    """The listed variants, each checked against the budget: BudgetMissed for one over it
    unless `budget.force`, when its record says it was forced."""
    by_name = {r.name: r for r in reports}
    chosen, records, over = [], {}, []
    for name in listed:
        r = by_name[name]
        drop = drop_points(teacher, r, metric)
        forced = not drop <= budget.max_drop
        if forced:
            over.append(f"{name} ({drop:+.2f} points)")
        chosen.append(r)
        records[name] = _record(budget, metric, teacher, drop, "listed", forced)
    if over and not budget.force:
        raise BudgetMissed(
            f"register: {', '.join(over)} exceed(s) the budget of {budget.max_drop:g} points "
            f"of the teacher's dev {metric}; nothing published. Set register.force: true to "
            "publish anyway (the manifest records it), or raise register.max_drop")
    first = chosen[0]
    reason = (f"register: {_describe(first, records[first.name]['drop'])} as listed"
              + (f"; forced over budget: {', '.join(over)}" if over else
                 f", within {budget.max_drop:g} points"))
    return Selection(chosen=chosen, records=records, reason=reason)
