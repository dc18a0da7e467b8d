"""The experiments' counts, kept twice: as Prometheus counters (which add up across
replicas when every replica is scraped) and in this process, for the report of
`GET /admin/experiments/{name}`. One method per event, so the two never drift apart.
Used on the event loop's thread only: plain ints need no lock."""

from __future__ import annotations

from dataclasses import dataclass

from registry import ModelRef

from ..metrics import Metrics


@dataclass
class VersionCounts:
    requests: int = 0  # requests it answered (a shadow: copies it answered)
    predictions: int = 0  # texts it answered
    shadow_requests: int = 0  # of `requests`, those answered as a shadow
    feedback: int = 0  # answers judged by feedback
    correct: int = 0


@dataclass
class PairCounts:
    """A routed version and its shadow, compared on the same texts."""

    copies: int = 0  # requests copied, whatever became of them
    dropped: int = 0  # saturated, not loaded, failed or timed out
    texts: int = 0
    agreements: int = 0
    difference_sum: float = 0.0

    @property
    def agreement(self) -> float | None:
        return self.agreements / self.texts if self.texts else None

    @property
    def mean_difference(self) -> float | None:
        return self.difference_sum / self.texts if self.texts else None


class Ledger:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.versions: dict[tuple[str, str], VersionCounts] = {}
        self.pairs: dict[tuple[str, str, str], PairCounts] = {}

    def _version(self, model: str, version: str) -> VersionCounts:
        return self.versions.setdefault((model, version), VersionCounts())

    def _pair(self, ref: ModelRef, shadow: str) -> PairCounts:
        return self.pairs.setdefault((ref.name, ref.version, shadow), PairCounts())

    def served(self, ref: ModelRef, n_texts: int) -> None:
        counts = self._version(ref.name, ref.version)
        counts.requests += 1
        counts.predictions += n_texts

    def shadow_outcome(self, ref: ModelRef, shadow: str, outcome: str) -> None:
        """A copy of a request to `ref` was `outcome` (compared, or why it was not)."""
        pair = self._pair(ref, shadow)
        pair.copies += 1
        if outcome != "compared":
            pair.dropped += 1
        self.metrics.shadow_copies.labels(ref.name, ref.version, shadow, outcome).inc()

    def compared(self, ref: ModelRef, shadow: str, agreements: list[bool],
                 differences: list[float], seconds: float) -> None:
        """The shadow answered a copy's texts: how often it agreed, and by how much its
        probabilities differed, text by text."""
        counts = self._version(ref.name, shadow)
        counts.requests += 1
        counts.shadow_requests += 1
        counts.predictions += len(agreements)
        pair = self._pair(ref, shadow)
        pair.texts += len(agreements)
        pair.agreements += sum(agreements)
        pair.difference_sum += sum(differences)
        m, labels = self.metrics, (ref.name, ref.version, shadow)
        m.shadow_texts.labels(*labels).inc(len(agreements))
        m.shadow_agreements.labels(*labels).inc(sum(agreements))
        m.shadow_seconds.labels(*labels).observe(seconds)
        histogram = m.shadow_difference.labels(*labels)
        for difference in differences:
            histogram.observe(difference)
        self.shadow_outcome(ref, shadow, "compared")

    def judged(self, model: str, version: str, role: str, correct: bool) -> None:
        counts = self._version(model, version)
        counts.feedback += 1
        counts.correct += int(correct)
        outcome = "correct" if correct else "incorrect"
        self.metrics.feedback_answers.labels(model, version, role, outcome).inc()

    def refused(self, reason: str) -> None:
        self.metrics.feedback_refused.labels(reason).inc()

    def unjudged(self, model: str, version: str, shadow: str) -> None:
        self.metrics.feedback_shadow_unjudged.labels(model, version, shadow).inc()

    def models(self) -> set[str]:
        return {model for model, _ in self.versions} | {model for model, *_ in self.pairs}
