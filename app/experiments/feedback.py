"""POST /feedback's logic: check a prediction id, check the label, judge the answer of
the version that answered (and of the shadow, when this process holds its answer to the
same text), and count it.

An id carries everything needed to judge the routed answer, so any replica with the key
counts it, also for a version unloaded since. A shadow's answer lives in the process
that ran the copy (it came after the response, too late for the id): with
APP_REPLICA_URL, feedback reaches that process (`relay`); without it, feedback sent to
another replica judges the routed answer and counts the shadow's as unjudged.
The same prediction is judged once per process; a repeat is refused (409). Both memories
(the shadow's answers, the predictions judged) hold the last 100 000 entries, a few tens
of megabytes at most: feedback on an older prediction still counts for the routed
version, but its shadow's answer is gone and a repeat of it is no longer caught.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from registry import Manifest, ModelRef

from ..errors import AppError, BadInput, Conflict
from ..models import ModelManager
from .ids import IdSigner, InvalidPredictionId, PredictionExpired, PredictionRecord
from .ledger import Ledger
from .shadow import Answer, ShadowAnswers


@dataclass(frozen=True)
class Judgement:
    model: str
    version: str
    correct: bool
    shadow_version: str | None = None
    shadow_correct: bool | None = None  # None: the shadow's answer is not held here


class LabelSets:
    """A version's labels, from its loaded manifest or the registry (also after it is
    unloaded); None when neither has it."""

    def __init__(self, manager: ModelManager) -> None:
        self._manager = manager
        self._cache: dict[ModelRef, frozenset[str]] = {}  # a published version never changes

    def get(self, model: str, version: str) -> frozenset[str] | None:
        try:
            ref = ModelRef(name=model, version=version)
        except ValueError:
            return None
        if ref not in self._cache:
            loaded = self._manager.get(ref)
            try:
                manifest = loaded.manifest if loaded else Manifest.read(ref.path(
                    self._manager.root))
            except (OSError, ValueError):
                return None
            self._cache[ref] = frozenset(manifest.labels)
        return self._cache[ref]


class FeedbackJudge:
    def __init__(self, signer: IdSigner, ledger: Ledger, answers: ShadowAnswers,
                 labels: LabelSets, capacity: int = 100_000) -> None:
        self._signer = signer
        self._ledger = ledger
        self._answers = answers
        self._labels = labels
        self._capacity = capacity
        self._seen: OrderedDict[str, None] = OrderedDict()

    def judge(self, prediction_id: str, label: str | list[str]) -> Judgement:
        """Judge and count one feedback; AppErrors (403, 409, 410, 422) say why not."""
        try:
            record = self._signer.verify(prediction_id)
            given = self._given(record, label)
        except AppError as exc:
            reason = {InvalidPredictionId: "invalid_id", PredictionExpired: "expired"}
            self._ledger.refused(reason.get(type(exc), "bad_label"))
            raise
        if record.nonce in self._seen:
            self._ledger.refused("duplicate")
            raise Conflict("feedback for this prediction was already recorded")
        self._seen[record.nonce] = None
        while len(self._seen) > self._capacity:
            self._seen.popitem(last=False)
        correct = given == record.labels
        self._ledger.judged(record.model, record.version, "routed", correct)
        if record.shadow is None:
            return Judgement(record.model, record.version, correct)
        held = self._answers.get(record.nonce)
        if held is None or held[0] != record.shadow:
            self._ledger.unjudged(record.model, record.version, record.shadow)
            return Judgement(record.model, record.version, correct, record.shadow)
        shadow_correct = held[1] == given
        self._ledger.judged(record.model, record.shadow, "shadow", shadow_correct)
        return Judgement(record.model, record.version, correct, record.shadow, shadow_correct)

    def _given(self, record: PredictionRecord, label: str | list[str]) -> Answer:
        """The label sent, as an answer comparable with the prediction's."""
        where = f"{record.model}/{record.version}"
        if record.multi_label and not isinstance(label, list):
            raise BadInput(f"{where} is multi-label: send 'label' as a list of labels "
                           "(empty when none applies)")
        if not record.multi_label and not isinstance(label, str):
            raise BadInput(f"{where} is single-label: send 'label' as one label")
        given = tuple(sorted(set(label))) if isinstance(label, list) else (label,)
        known = self._labels.get(record.model, record.version)
        unknown = [x for x in given if known is not None and x not in known]
        if unknown:
            shown = sorted(known or ())
            listing = ", ".join(shown[:20]) + (", ..." if len(shown) > 20 else "")
            raise BadInput(f"unknown label {unknown[0]!r} for {where}: its labels are "
                           f"{listing}")
        return given
