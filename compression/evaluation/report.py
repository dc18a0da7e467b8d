"""Evaluation results: one `VariantReport` per variant, as a Markdown table, a JSON file
and a chart of accuracy against size and latency."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from compression.core.data import TOKEN_TASK


@dataclass
class VariantReport:
    name: str
    kind: str
    size_mb: float
    accuracy: float
    macro_f1: float
    agreement: float
    latency_p50_ms: float
    latency_p95_ms: float
    throughput_b32: float
    peak_memory_mb: float = float("nan")
    latency_threads: int = 0  # intra-op threads of the batch-1 latency reported
    ratios: dict[str, float] = field(default_factory=dict)
    # Multi-label: micro-F1, and each label's threshold chosen on the evaluation data.
    micro_f1: float | None = None
    thresholds: list[float] | None = None
    # Question answering: SQuAD's F1 and exact match (`accuracy` is the exact match too).
    f1: float | None = None
    exact_match: float | None = None
    task: str = ""  # the task's name; token-classification reports show entity F1


def markdown_table(reports: list[VariantReport]) -> str:
    """One row per variant; question answerers' scores are SQuAD's exact match and F1."""
    spans = bool(reports) and all(r.f1 is not None for r in reports)
    entities = bool(reports) and all(r.task == TOKEN_TASK for r in reports)
    scores = ("dev EM | dev F1" if spans else "tag acc | entity F1" if entities
              else "dev acc | macro-F1")
    delta = "EM" if spans else "F1" if entities else "acc"
    header = (f"| variant | runtime | MB | {scores} | agrees with ref | b1 p50 ms | "
              "b1 p95 ms | b1 threads | b32 sent/s | peak RSS MB | smaller | faster b1 | "
              f"Δ {delta} (pts) |")
    lines = [header, "|" + " --- |" * 14]
    for r in reports:
        second = ((r.f1 or 0.0) if spans else (r.micro_f1 or 0.0) if entities
                  else r.macro_f1)
        change = r.ratios["f1_delta_points" if entities else "accuracy_delta_points"]
        lines.append(
            f"| {r.name} | {r.kind} | {r.size_mb:.1f} | {100 * r.accuracy:.2f} | "
            f"{100 * second:.2f} | {100 * r.agreement:.1f} % | {r.latency_p50_ms:.2f} | "
            f"{r.latency_p95_ms:.2f} | {r.latency_threads} | {r.throughput_b32:.0f} | "
            f"{r.peak_memory_mb:.0f} | "
            f"{r.ratios['smaller']:.1f}x | "
            f"{r.ratios['faster_b1']:.1f}x | {change:+.2f} |"
        )
    return "\n".join(lines) + "\n"


_MARKERS = "osD^vP*Xhp<>"


def _model_and_precision(name: str) -> tuple[str, str]:
    """"l3-vocab-int8-static" -> ("l3-vocab", "int8-static")."""
    for marker in ("-torch-", "-fp32", "-int"):
        if marker in name:
            at = name.index(marker)
            return name[:at], name[at + 1:]
    return name, ""


def plot(reports: list[VariantReport], path: Path, title: str = "") -> Path:
    """Accuracy against size and against batch-1 latency, one point per variant.

    With many variants, labels beside the points overlap: instead the model (the name
    before the precision, e.g. "l3-vocab") picks the marker, the precision ("int8-static")
    picks the colour, and two legends name them.
    """
    # Imported here: only a chart needs matplotlib (slow to import), and its backend must
    # be chosen before pyplot loads.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    split = _model_and_precision
    models = list(dict.fromkeys(split(r.name)[0] for r in reports))
    precisions = list(dict.fromkeys(split(r.name)[1] for r in reports))
    colours = plt.get_cmap("tab10")
    # Tall enough for both legends, one line per model and per precision, not to overlap.
    height = max(5.0, 0.2 * (len(models) + len(precisions)) + 1.5)
    fig, axes = plt.subplots(1, 2, figsize=(13, height))
    for ax, key, label in (
        (axes[0], "size_mb", "size on disk (MB, log scale)"),
        (axes[1], "latency_p50_ms", "batch-1 latency p50 (ms, log scale)"),
    ):
        for r in reports:
            model, precision = split(r.name)
            ax.scatter(getattr(r, key), 100 * r.accuracy, s=60, label=r.name,
                       marker=_MARKERS[models.index(model) % len(_MARKERS)],
                       color=colours(precisions.index(precision) % 10),
                       edgecolors="black", linewidths=0.5)
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("dev accuracy (%)")
        ax.grid(True, alpha=0.3)
    _legends(fig, models, precisions, colours)
    fig.suptitle(title or "accuracy against size and latency")
    fig.tight_layout(rect=(0, 0, 0.84, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_reports(reports: list[VariantReport], out_dir: Path, title: str = "") -> dict[str, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "markdown": out_dir / "evaluation.md",
        "json": out_dir / "evaluation.json",
        "chart": out_dir / "evaluation.png",
    }
    paths["markdown"].write_text(markdown_table(reports))
    paths["json"].write_text(json.dumps([asdict(r) for r in reports], indent=2) + "\n")
    plot(reports, paths["chart"], title)
    return paths


def _legends(fig: Any, models: list[str], precisions: list[str], colours: Any) -> None:
    # Two short legends (one entry per model, one per precision) instead of one entry
    # per point, which no longer fits beside the axes once there are dozens of variants.
    from matplotlib.lines import Line2D  # loaded by plot() already

    grey, white = "#bbbbbb", "white"
    model_handles = [Line2D([], [], linestyle="", marker=_MARKERS[i % len(_MARKERS)],
                            markerfacecolor=grey, markeredgecolor="black", label=m or "(other)")
                     for i, m in enumerate(models)]
    precision_handles = [Line2D([], [], linestyle="", marker="o", markerfacecolor=colours(i % 10),
                                markeredgecolor=white, markersize=9, label=p or "(other)")
                         for i, p in enumerate(precisions)]
    first = fig.legend(handles=model_handles, title="model (marker)", loc="upper right",
                       fontsize=8, title_fontsize=8, frameon=False, bbox_to_anchor=(1.0, 0.95))
    fig.add_artist(first)
    fig.legend(handles=precision_handles, title="precision (colour)", loc="lower right",
               fontsize=8, title_fontsize=8, frameon=False, bbox_to_anchor=(1.0, 0.05))
