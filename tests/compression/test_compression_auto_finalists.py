"""The final evaluation of `auto` measures only what can still win, over as many rounds
as the time budget's share allows: the contenders within the budget first, then the
frontier (the nearest miss among it when nothing is within)."""

from __future__ import annotations

import pytest

from compression.auto.finalists import (
    CONTENDERS,
    ScoredVariant,
    finalists,
    frontier,
    plan_rounds,
)
from compression.auto.frontier import frontier_rows, frontier_table
from compression.budget import Budget
from compression.evaluation.report import VariantReport


def _v(name: str, size: float, latency: float | None, drop: float,
       eval_s: float | None = 10.0) -> ScoredVariant:
    return ScoredVariant(name, size, latency, drop, eval_s)


SCORED = [
    _v("big-accurate", 90.0, 9.0, 0.0),
    _v("mid", 20.0, 3.0, 0.5),
    _v("mid-slower", 21.0, 3.5, 0.6),  # dominated by "mid" on all three
    _v("small", 8.0, 2.5, 0.9),
    _v("smaller-slow", 7.5, 4.0, 0.95),
    _v("tiny-over", 5.0, 1.0, 3.0),  # over a 1-point budget, but on the frontier
    _v("broken", 1.0, 1.0, float("nan")),
]


def test_the_frontier_holds_what_nothing_beats_on_size_speed_and_accuracy() -> None:
    names = [s.name for s in frontier(SCORED)]
    assert names == ["tiny-over", "smaller-slow", "small", "mid", "big-accurate"]


@pytest.mark.parametrize(("prefer", "first"), [("smallest", "smaller-slow"),
                                                ("fastest", "small")])
def test_the_contenders_come_first_then_the_frontier(prefer: str, first: str) -> None:
    chosen = [s.name for s in finalists(SCORED, Budget(max_drop=1.0, prefer=prefer))]
    assert chosen[0] == first
    assert len(chosen) == len(set(chosen))
    assert "mid-slower" not in chosen[CONTENDERS:] and "broken" not in chosen
    assert {"tiny-over", "big-accurate"} <= set(chosen)
    assert len(finalists(SCORED, Budget(max_drop=1.0, prefer=prefer), limit=2)) == 2


def test_with_nothing_within_the_nearest_miss_is_measured() -> None:
    worse = [ScoredVariant(s.name, s.size_mb, s.latency_ms, s.drop + 2, s.eval_s)
             for s in SCORED]
    chosen = finalists(worse, Budget(max_drop=1.0), limit=CONTENDERS)
    assert "big-accurate" in [s.name for s in chosen]


def test_variants_scored_by_an_older_search_compare_on_size_and_accuracy() -> None:
    old = [_v("a", 10.0, None, 0.5, None), _v("b", 12.0, None, 0.6, None),
           _v("c", 12.0, None, 0.2, None)]
    assert [s.name for s in frontier(old)] == ["a", "c"]


def test_rounds_go_down_first_then_finalists_to_fit_the_time_left() -> None:
    chosen = [_v(f"v{i}", 10.0 - i, 1.0, 0.1) for i in range(4)]  # 10 s a round each
    teacher_s = 20.0  # a round of the whole: 60 s; plus one for the memory probe
    assert plan_rounds(chosen, teacher_s, 1e9, 3, chosen) == (chosen, 3)
    assert plan_rounds(chosen, teacher_s, 180.0, 3, chosen) == (chosen, 2)
    assert plan_rounds(chosen, teacher_s, 120.0, 3, chosen) == (chosen, 1)
    assert plan_rounds(chosen, teacher_s, 80.0, 3, chosen) == (chosen[:2], 1)
    assert plan_rounds(chosen, teacher_s, 1.0, 3, chosen) == (chosen[:1], 1)


def test_a_variant_of_unknown_cost_is_planned_at_the_median_of_the_known() -> None:
    known = [_v("a", 1, 1, 0, 10.0), _v("b", 1, 1, 0, 30.0), _v("c", 1, 1, 0, 20.0)]
    unknown = _v("d", 1, 1, 0, None)
    # Two variants at 20 s (d at the median) and no teacher cost: 40 s a round.
    assert plan_rounds([known[2], unknown], 0.0, 80.0, 3, known) == ([known[2], unknown], 1)
    assert plan_rounds([known[2], unknown], 0.0, 79.0, 3, known)[0] == [known[2]]


def _report(name: str, size_mb: float, accuracy: float, latency_ms: float) -> VariantReport:
    return VariantReport(name=name, kind="onnx", size_mb=size_mb, accuracy=accuracy,
                         macro_f1=accuracy, agreement=1.0, latency_p50_ms=latency_ms,
                         latency_p95_ms=latency_ms, throughput_b32=100.0)


def test_the_table_marks_variants_only_the_search_measured_by_the_same_rule() -> None:
    """A variant from an older search has no latency: it is compared on size and
    accuracy alone (not starred when another is as small and more accurate), and its
    latency cell says it is unknown."""
    reports = [_report("teacher", 90.0, 0.90, 9.0), _report("final", 7.3, 0.89, 1.2)]
    others = [_v("worse-same-size", 7.3, None, 1.7), _v("smaller", 5.0, None, 3.0)]
    rows = {r.name: r for r in frontier_rows(reports, "accuracy", Budget(max_drop=1.0),
                                             others)}
    assert rows["final"].on_frontier and rows["smaller"].on_frontier
    assert not rows["worse-same-size"].on_frontier and not rows["smaller"].final
    table = frontier_table(list(rows.values()), "accuracy", "final")
    assert "| worse-same-size † | 7.3 | – |" in table and "nan" not in table
