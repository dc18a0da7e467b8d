"""A/B experiments that measure: shadow copies, feedback on predictions, and each
version's online accuracy with a verdict (docs/serving.md, "A/B experiments").

`Experiments` is made once per app, in its lifespan. The inference path calls
`served()` with every answered request: it counts the request, signs one prediction id
per answer (`ids`), and may copy the request to the model's shadow (`shadow`).
`POST /feedback` goes to `feedback` (relayed first to the replica that issued the id,
when replicas know their URLs: `relay`); `GET /admin/experiments/{name}` to `report`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from typing import Any

from registry import ModelRef

from ..classifier import Prediction
from ..errors import AppError
from ..metrics import Metrics
from ..models import ModelManager
from ..routing import Router
from ..settings import Settings
from .feedback import FeedbackJudge, Judgement, LabelSets
from .ids import IdSigner, PredictionRecord, new_nonce, signer_key
from .ledger import Ledger
from .relay import FeedbackRelay, Relayed
from .report import experiment_report
from .shadow import ShadowAnswers, ShadowRunner, answer

__all__ = ["Experiments", "Judgement", "Relayed"]

log = logging.getLogger(__name__)


class Experiments:
    def __init__(self, settings: Settings, metrics: Metrics, manager: ModelManager,
                 router: Router) -> None:
        configured = settings.feedback_key
        key, shared = signer_key(configured.get_secret_value() if configured else None)
        if not shared:
            log.warning("APP_FEEDBACK_KEY is not set: prediction ids are signed with a "
                        "random key, accepted by this process only until it restarts")
        self.signer = IdSigner(key, settings.feedback_max_age_s)
        self.ledger = Ledger(metrics)
        self.router = router
        answers = ShadowAnswers()
        self.shadow = ShadowRunner(manager, self.ledger, answers, settings.shadow_max_pending,
                                   settings.request_timeout_s)
        self.feedback = FeedbackJudge(self.signer, self.ledger, answers, LabelSets(manager))
        self.relay = FeedbackRelay(settings.replica_url, settings.feedback_relay_timeout_s,
                                   metrics)
        self._rng = random.Random()

    def served(self, ref: ModelRef, texts: list[str], predictions: Sequence[Prediction],
               method: str) -> list[str] | None:
        """Count a request `ref` answered, copy it to the model's shadow when sampled,
        and return one prediction id per answer (None for answers feedback cannot judge:
        a token classifier's entities, a question answerer's spans). Never awaits: the
        answer is not held up."""
        self.ledger.served(ref, len(predictions))
        if not all(isinstance(p, Prediction) and p.entities is None for p in predictions):
            return None
        nonce = new_nonce()
        shadow = self.router.shadow(ref.name)
        copied = None
        # Routed requests only: a pinned request asked for one version by name.
        if (shadow is not None and method != "pinned" and shadow.version != ref.version
                and self._rng.random() < shadow.fraction
                and self.shadow.submit(ref, shadow.version, texts, predictions, nonce)):
            copied = shadow.version
        issued = int(time.time())
        multi = [p.labels is not None for p in predictions]
        return [
            self.signer.sign(PredictionRecord(ref.name, ref.version, answer(p), multi[i],
                                              issued, f"{nonce}-{i}", copied,
                                              self.relay.own_url))
            for i, p in enumerate(predictions)
        ]

    def judge(self, prediction_id: str, label: str | list[str]) -> Judgement:
        return self.feedback.judge(prediction_id, label)

    async def relayed(self, prediction_id: str, body: dict[str, Any],
                      relayed_already: bool) -> Relayed | None:
        """The issuing replica's answer to this feedback, when another replica issued the
        id and answers; None: judge it here (`judge`)."""
        try:
            origin = self.signer.verify(prediction_id).origin
        except AppError:  # `judge` refuses it, counted, with its reason
            return None
        target = self.relay.target(origin, relayed_already)
        return None if target is None else await self.relay.relay(target, body)

    def report(self, name: str) -> dict[str, Any]:
        return experiment_report(name, self.router, self.ledger)

    def knows(self, name: str) -> bool:
        """True when `name` has a route or counts in this process."""
        return self.router.weights(name) is not None or name in self.ledger.models()

    async def stop(self) -> None:
        await self.shadow.stop()
        await self.relay.close()
