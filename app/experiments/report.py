"""`GET /admin/experiments/{name}`: per version, requests, feedback, online accuracy
with its 95 % Wilson interval, agreement with the versions it was compared with, and a
two-proportion test against the baseline (the routed version with the largest weight),
with a verdict in words. The counts are this process's: each replica reports what it
served and was told, and Prometheus adds replicas up (docs/serving.md)."""

from __future__ import annotations

from typing import Any

from ..routing import Router, version_order
from .ledger import Ledger, PairCounts, VersionCounts
from .stats import verdict, wilson_interval


def _rounded(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def baseline_version(weights: dict[str, float], counts: dict[str, VersionCounts]) -> str | None:
    """The routed version with the largest weight (the incumbent); with no route, the
    version with the most feedback."""
    if weights and max(weights.values()) > 0:
        return min(weights, key=lambda v: (-weights[v], version_order(v)))
    judged = [v for v, c in counts.items() if c.feedback]
    return min(judged, key=lambda v: (-counts[v].feedback, version_order(v))) if judged else None


def _agreement(name: str, version: str, ledger: Ledger) -> dict[str, Any]:
    """The versions `version` was compared with, shadow or shadowed, and how often the
    two agreed."""
    out: dict[str, Any] = {}
    for (model, routed, shadow), pair in ledger.pairs.items():
        if model != name or version not in (routed, shadow) or routed == shadow:
            continue
        other = shadow if version == routed else routed
        out[other] = _pair_out(pair)
    return out


def _pair_out(pair: PairCounts) -> dict[str, Any]:
    return {"texts": pair.texts, "rate": _rounded(pair.agreement),
            "mean_probability_difference": _rounded(pair.mean_difference),
            "copies": pair.copies, "copies_dropped": pair.dropped}


def _role(version: str, weights: dict[str, float], shadow: str | None) -> str:
    roles = [r for r, on in (("routed", weights.get(version, 0) > 0),
                             ("shadow", version == shadow)) if on]
    return ", ".join(roles) or "idle"


def experiment_report(name: str, router: Router, ledger: Ledger) -> dict[str, Any]:
    weights = dict(router.weights(name) or {})
    shadow = router.shadow(name)
    shadow_version = shadow.version if shadow and shadow.fraction > 0 else None
    counts = {v: c for (m, v), c in ledger.versions.items() if m == name}
    names = set(weights) | set(counts) | ({shadow.version} if shadow else set())
    baseline = baseline_version(weights, counts)
    base = counts.get(baseline or "", VersionCounts())
    versions: dict[str, Any] = {}
    verdicts = []
    for version in sorted(names, key=version_order):
        c = counts.get(version, VersionCounts())
        interval = wilson_interval(c.correct, c.feedback)
        entry: dict[str, Any] = {
            "role": _role(version, weights, shadow_version),
            "weight": weights.get(version, 0.0),
            "requests": c.requests, "predictions": c.predictions,
            "shadow_requests": c.shadow_requests,
            "feedback": c.feedback, "correct": c.correct,
            "accuracy": _rounded(c.correct / c.feedback) if c.feedback else None,
            "accuracy_ci95": [_rounded(x) for x in interval] if interval else None,
            "agreement": _agreement(name, version, ledger),
            "comparison": None,
        }
        if baseline is not None and version != baseline:
            v = verdict(version, c.correct, c.feedback, baseline, base.correct, base.feedback)
            entry["comparison"] = {
                "against": baseline,
                "difference": _rounded(v.test.difference) if v.test else None,
                "z": _rounded(v.test.z) if v.test and v.test.z is not None else None,
                "p_value": float(f"{v.test.p_value:.4g}") if v.test else None,
                "verdict": v.text, "more_needed": v.more_needed,
            }
            verdicts.append(v.text)
        versions[version] = entry
    return {"model": name, "routes": weights,
            "shadow": shadow.model_dump() if shadow else None,
            "baseline": baseline, "versions": versions, "verdicts": verdicts}
