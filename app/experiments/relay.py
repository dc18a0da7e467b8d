"""Feedback is judged by the replica that made the prediction.

A shadow's answer is known only in the process that ran the copy (it comes after the
response, too late for the id), and the record of predictions already judged is per
process. With `APP_REPLICA_URL` set, every id names the replica that issued it (signed,
so a client cannot point a replica at an address of its choosing), and feedback that
reaches another replica is relayed there: the shadow is judged against the same label and
a repeat is caught whichever replica it is sent to, still without shared state. When
that replica does not answer (gone, or too slow), the feedback is judged where it
arrived: the routed version still counts, the shadow's answer is counted unjudged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx

from ..metrics import Metrics

# Marks a relayed request: the replica it reaches judges it, never relays it again.
FORWARDED_HEADER = "x-feedback-relayed"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Relayed:
    """The issuing replica's answer, passed on unchanged."""

    status: int
    body: bytes


class FeedbackRelay:
    def __init__(self, own_url: str | None, timeout_s: float, metrics: Metrics) -> None:
        self.own_url = own_url
        self._timeout_s = timeout_s
        self._metrics = metrics
        self._client: httpx.AsyncClient | None = None  # made on first use

    def target(self, origin: str | None, relayed_already: bool) -> str | None:
        """Where feedback on a prediction issued by `origin` is judged (None: here)."""
        if origin is None or relayed_already or origin == self.own_url:
            return None
        return origin

    async def relay(self, origin: str, body: dict[str, Any]) -> Relayed | None:
        """POST the feedback to the issuing replica; None when it did not answer (or
        answered 5xx), and the caller judges it here."""
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout_s)
        try:
            response = await self._client.post(f"{origin}/feedback", json=body,
                                               headers={FORWARDED_HEADER: "1"})
        except httpx.HTTPError as exc:
            log.warning("feedback: the issuing replica %s did not answer (%s): judged here",
                        origin, type(exc).__name__)
            self._metrics.feedback_relayed.labels("unreachable").inc()
            return None
        if response.status_code >= 500:
            log.warning("feedback: the issuing replica %s answered %d: judged here", origin,
                        response.status_code)
            self._metrics.feedback_relayed.labels("unreachable").inc()
            return None
        self._metrics.feedback_relayed.labels("relayed").inc()
        return Relayed(response.status_code, response.content)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
