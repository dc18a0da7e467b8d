"""Which of the search's variants the final side-by-side evaluation measures, and over how
many rounds, so that it fits the time budget's share.

The search has already scored every variant once on dev (its accuracy is final: the same
data through the same deterministic runtime) and timed it over one round. The final
evaluation re-measures, over several rounds and with a memory probe, only the variants
that can still matter: the few best within the budget on the preferred axis (one round of
latency is noisy, so not only the best) and the search's frontier (no other variant as
small, as fast and as accurate). On CoNLL-2003 measuring all 36 variants took over an hour
of a 92-minute budget; the others keep their one-round figures in the frontier table.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from compression.budget import Budget

# The best few within the budget on the preferred axis are always measured again.
CONTENDERS = 3
# At most this many variants besides the teacher, contenders first.
MAX_FINALISTS = 12


@dataclass(frozen=True)
class ScoredVariant:
    """A variant as the search left it: one round of measurement."""

    name: str
    size_mb: float
    latency_ms: float | None  # None: scored by an older search that did not keep it
    drop: float  # points of the main dev metric below the teacher
    eval_s: float | None  # seconds one round of measuring it took, if known


class Point(Protocol):
    """A variant on the size/latency/accuracy plane (a latency of None or NaN: unknown)."""

    size_mb: float
    latency_ms: float | None
    drop: float


def _known(ms: float | None) -> bool:
    return ms is not None and not math.isnan(ms)


def dominates(a: Point, b: Point) -> bool:
    """`a` at least as small, as fast (where both latencies are known) and as accurate as
    `b`, and better on one. A NaN drop never dominates, nor is dominated."""
    both = _known(a.latency_ms) and _known(b.latency_ms)
    fast = not both or a.latency_ms <= b.latency_ms  # type: ignore[operator]
    better = a.size_mb < b.size_mb or a.drop < b.drop or (
        both and a.latency_ms < b.latency_ms)  # type: ignore[operator]
    return a.size_mb <= b.size_mb and a.drop <= b.drop and fast and better


def frontier(scored: list[ScoredVariant]) -> list[ScoredVariant]:
    """The variants no other dominates, smallest first (a NaN score is never on it)."""
    valid = [s for s in scored if not math.isnan(s.drop)]
    front = [s for s in valid if not any(dominates(o, s) for o in valid if o is not s)]
    return sorted(front, key=lambda s: (s.size_mb, s.drop))


def _preferred(prefer: str) -> Callable[[ScoredVariant], tuple[float, float]]:
    inf = float("inf")
    if prefer == "smallest":
        return lambda s: (s.size_mb, s.latency_ms if s.latency_ms is not None else inf)
    return lambda s: (s.latency_ms if s.latency_ms is not None else inf, s.size_mb)


def finalists(scored: list[ScoredVariant], budget: Budget,
              limit: int = MAX_FINALISTS) -> list[ScoredVariant]:
    """What the final evaluation measures, most important first: the CONTENDERS best
    within the budget on the preferred axis (the nearest miss when nothing is within: the
    error names it), then the frontier, at most `limit`."""
    within = sorted((s for s in scored if s.drop <= budget.max_drop), key=_preferred(budget.prefer))
    valid = [s for s in scored if not math.isnan(s.drop)]
    chosen = within[:CONTENDERS] or sorted(valid, key=lambda s: s.drop)[:1]
    chosen += [s for s in frontier(scored) if s not in chosen]
    return chosen[:max(1, limit)]


def round_seconds(variant: ScoredVariant, known: list[ScoredVariant]) -> float:
    """One round of measuring `variant`: its own search figure, else the median of those
    known (0 when nothing is: nothing to plan with)."""
    if variant.eval_s is not None:
        return variant.eval_s
    times = [s.eval_s for s in known if s.eval_s is not None]
    return statistics.median(times) if times else 0.0


def plan_rounds(chosen: list[ScoredVariant], teacher_round_s: float, seconds_left: float,
                wanted: int, all_scored: list[ScoredVariant]) -> tuple[list[ScoredVariant], int]:
    """The finalists and rounds that fit `seconds_left`: each variant costs its rounds
    plus one more for its memory probe. Rounds go down first, to one; then finalists
    are dropped from the end (the first contender always stays)."""
    costs = [round_seconds(v, all_scored) for v in chosen]

    def cost(count: int, rounds: int) -> float:
        return (rounds + 1) * (teacher_round_s + sum(costs[:count]))

    for rounds in range(max(1, wanted), 0, -1):
        if cost(len(chosen), rounds) <= seconds_left:
            return chosen, rounds
    count = len(chosen)
    while count > 1 and cost(count, 1) > seconds_left:
        count -= 1
    return chosen[:count], 1
