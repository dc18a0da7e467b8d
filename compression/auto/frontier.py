"""The search's frontier: every variant's size, latency and drop against the teacher,
which are within the budget, which no other variant beats on all three, and the winner;
as a Markdown table and a chart. Variants the final evaluation did not measure again
keep the search's one-round figures, marked."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from compression.auto.finalists import ScoredVariant, dominates
from compression.budget import BASELINE_VARIANTS, Budget, drop_points
from compression.evaluation.report import VariantReport


@dataclass(frozen=True)
class FrontierRow:
    name: str
    size_mb: float
    latency_ms: float
    score: float  # the main dev metric, 0..1
    drop: float  # points below the teacher
    within: bool
    on_frontier: bool = False
    final: bool = True  # measured by the final evaluation (else: the search's one round)


def frontier_rows(reports: list[VariantReport], metric: str, budget: Budget,
                  others: Sequence[ScoredVariant] = ()) -> list[FrontierRow]:
    """One row per variant (reports[0] is the teacher), smallest first; `on_frontier`:
    no other variant is at least as small, as fast and as accurate, and better on one.
    `others`: variants only the search measured."""
    teacher = reports[0]
    teacher_score = float(getattr(teacher, metric))
    rows = [FrontierRow(r.name, r.size_mb, r.latency_p50_ms, float(getattr(r, metric)),
                        drop, drop <= budget.max_drop)
            for r in reports[1:] for drop in [drop_points(teacher, r, metric)]]
    rows += [FrontierRow(o.name, o.size_mb, math.nan if o.latency_ms is None else o.latency_ms,
                         teacher_score - o.drop / 100, o.drop, o.drop <= budget.max_drop,
                         final=False) for o in others]

    # One rule with the final evaluation's choice: a latency only the search did not keep
    # (older states) is compared on size and accuracy alone.
    rows = [FrontierRow(**{**row.__dict__, "on_frontier": not math.isnan(row.drop) and not any(
        o is not row and dominates(o, row) for o in rows)}) for row in rows]
    return sorted(rows, key=lambda row: (row.size_mb, row.latency_ms))


def frontier_table(rows: list[FrontierRow], metric: str, winner: str | None) -> str:
    lines = [f"| variant | MB | b1 p50 ms | dev {metric} | Δ vs teacher (pts) | within budget "
             "| frontier |", "|" + " --- |" * 7]
    for row in rows:
        mark = " **(published)**" if row.name == winner else ""
        baseline = " (baseline)" if row.name in BASELINE_VARIANTS else ""
        mark += "" if row.final else " †"
        latency = "–" if math.isnan(row.latency_ms) else f"{row.latency_ms:.2f}"
        lines.append(f"| {row.name}{mark}{baseline} | {row.size_mb:.1f} | {latency} "
                     f"| {100 * row.score:.2f} | {-row.drop:+.2f} | "
                     f"{'yes' if row.within else 'no'} | {'★' if row.on_frontier else ''} |")
    if not all(row.final for row in rows):
        lines.append("\n† not measured again by the final evaluation (it could not win): "
                     "the search's figures, latency over one round.")
    return "\n".join(lines) + "\n"


def plot_frontier(rows: list[FrontierRow], budget: Budget, winner: str | None, path: Path,
                  title: str) -> Path:
    """Drop against size and against latency; the budget as a dashed line, the frontier
    joined, the winner starred."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, axis, label in ((axes[0], "size_mb", "model file (MB, log)"),
                            (axes[1], "latency_ms", "batch-1 latency p50 (ms, log)")):
        for within, colour in ((True, "tab:green"), (False, "tab:red")):
            points = [r for r in rows if r.within == within]
            ax.scatter([getattr(r, axis) for r in points], [-r.drop for r in points],
                       c=colour, s=28, label="within budget" if within else "over budget")
        front = sorted((r for r in rows if r.on_frontier), key=lambda r: getattr(r, axis))
        ax.plot([getattr(r, axis) for r in front], [-r.drop for r in front], c="0.5", lw=0.8)
        for r in rows:
            if r.name == winner:
                ax.scatter([getattr(r, axis)], [-r.drop], marker="*", s=260, c="gold",
                           edgecolors="k", zorder=3, label=f"published: {r.name}")
        ax.axhline(-budget.max_drop, ls="--", c="k", lw=0.8, label=f"budget: -{budget.max_drop:g}")
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("points vs the teacher (dev)")
    axes[1].legend(fontsize=8, loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
