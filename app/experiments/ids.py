"""Prediction ids: what POST /feedback needs to attribute a label, signed by the server.

An id is `p1.<payload>.<signature>`: the payload (base64url JSON) names the model, the
version that answered, its predicted labels, when, a nonce, and the shadow version the
request was copied to, if any, and (with `APP_REPLICA_URL`) the replica that issued it;
the signature is an HMAC-SHA256 of the payload under
`APP_FEEDBACK_KEY`, truncated to 128 bits. Any replica that holds the key can check an id
and count its feedback without shared state, and a client cannot forge one (or change
the version or the labels in it) without the key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import itertools
import json
import secrets
import time
from dataclasses import dataclass

import orjson

from ..errors import AppError

PREFIX = "p1"
_SIGNATURE_BYTES = 16
# Replicas' clocks differ a little: an id "from the future" by less than this is fine.
_CLOCK_SKEW_S = 300


class InvalidPredictionId(AppError):
    """Not an id this service (or a replica sharing its key) issued. 403 rather than 422:
    the id is well-formed as far as the schema can say; it is its signature that fails."""

    status = 403
    type = "invalid_prediction_id"


class PredictionExpired(AppError):
    status = 410
    type = "prediction_expired"


@dataclass(frozen=True)
class PredictionRecord:
    """What an id says: `labels` is the answer (one label, or a multi-label version's
    label set), `nonce` tells apart two identical answers, `shadow` the shadow version the
    request was copied to (None: not copied)."""

    model: str
    version: str
    labels: tuple[str, ...]
    multi_label: bool
    issued_at: int
    nonce: str
    shadow: str | None = None
    origin: str | None = None  # the issuing replica's URL (APP_REPLICA_URL), if set


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# Nonces: this process's random prefix and a counter. Unique among replicas without the
# system call per request that a fresh random token costs (the signature, not the nonce,
# is what makes an id unforgeable).
_NONCE_PREFIX = secrets.token_hex(6)
_NONCE_COUNTER = itertools.count()


def new_nonce() -> str:
    """A request's nonce; its predictions add their index (`<nonce>-<i>`)."""
    return f"{_NONCE_PREFIX}{next(_NONCE_COUNTER):x}"


class IdSigner:
    """Signs prediction records into ids and checks ids back into records."""

    def __init__(self, key: bytes, max_age_s: float) -> None:
        if len(key) < 16:
            raise ValueError("a prediction-id key needs at least 16 bytes")
        self._keyed = hmac.new(key, digestmod=hashlib.sha256)  # copied: keyed once
        self.max_age_s = max_age_s

    def _signature(self, payload: str) -> bytes:
        mac = self._keyed.copy()
        mac.update(payload.encode("ascii"))
        return mac.digest()[:_SIGNATURE_BYTES]

    def sign(self, record: PredictionRecord) -> str:
        fields = [record.model, record.version, list(record.labels),
                  int(record.multi_label), record.issued_at, record.nonce, record.shadow]
        if record.origin is not None:  # ids without one stay as they were
            fields.append(record.origin)
        payload = _b64(orjson.dumps(fields))  # compact, as json.dumps with (",", ":")
        return f"{PREFIX}.{payload}.{_b64(self._signature(payload))}"

    def verify(self, token: str, now: float | None = None) -> PredictionRecord:
        """The record an id carries; InvalidPredictionId (403) when it is malformed or its
        signature fails, PredictionExpired (410) when it is older than the maximum age."""
        prefix, _, rest = token.partition(".")
        payload, _, signature = rest.partition(".")
        try:
            given = _unb64(signature)
        except (binascii.Error, ValueError):
            given = b""
        if prefix != PREFIX or not payload or not hmac.compare_digest(
                given, self._signature(payload) if payload.isascii() else b"?"):
            raise InvalidPredictionId(
                "prediction_id was not issued by this service (its signature does not "
                "match): send the prediction_id of a /predict answer unchanged; replicas "
                "accept each other's ids only when they share APP_FEEDBACK_KEY")
        record = _decode(payload)
        now = time.time() if now is None else now
        if now - record.issued_at > self.max_age_s:
            raise PredictionExpired(
                f"the prediction is {now - record.issued_at:.0f} s old; feedback is accepted "
                f"for {self.max_age_s:g} s (APP_FEEDBACK_MAX_AGE_S)")
        if record.issued_at - now > _CLOCK_SKEW_S:
            raise InvalidPredictionId("prediction_id was issued in the future: check the "
                                      "replicas' clocks")
        return record


def _decode(payload: str) -> PredictionRecord:
    """A signed payload's record. Signed means this service wrote it, so a payload that
    does not decode is a bug or an old format: refused all the same, never a 500."""
    try:
        fields = json.loads(_unb64(payload))
        model, version, labels, multi, issued, nonce, shadow, *rest = fields
        origin = rest[0] if len(rest) == 1 else None
        if len(rest) > 1:
            raise ValueError("too many fields")
        record = PredictionRecord(str(model), str(version), tuple(str(x) for x in labels),
                                  bool(multi), int(issued), str(nonce),
                                  None if shadow is None else str(shadow),
                                  None if origin is None else str(origin))
    except (ValueError, TypeError):
        raise InvalidPredictionId("prediction_id cannot be read: it is from another "
                                  "version of the service") from None
    return record


def signer_key(configured: str | None) -> tuple[bytes, bool]:
    """(key, configured): APP_FEEDBACK_KEY's bytes, or a random key for this process."""
    if configured is not None:
        return configured.encode(), True
    return secrets.token_bytes(32), False
