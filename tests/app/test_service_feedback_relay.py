"""Feedback across replicas (APP_REPLICA_URL): two real service processes sharing a key.
Feedback sent to the replica that did not make the prediction is relayed to the one that
did, so the shadow's answer is judged and a repeat is refused whichever replica gets it;
when the issuing replica is gone, the feedback is judged where it arrived."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import httpx
from service_helpers import ADMIN, ServerProcess, metric_sum

from app.experiments.ids import IdSigner, PredictionRecord

FEEDBACK_KEY = "a-shared-feedback-key-for-tests"
TEXTS = ["a wonderful film", "dull and boring", "fine", "not good at all"]
WAIT_S = 60  # generous: a loaded 2-core machine
TIMEOUT = httpx.Timeout(30.0)


def replica(root: Path, log_path: Path) -> ServerProcess:
    server = ServerProcess(root, log_path, APP_FEEDBACK_KEY=FEEDBACK_KEY)
    server.env["APP_REPLICA_URL"] = server.base  # the port is chosen at construction
    return server


def metric(base: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include `labels`."""
    return metric_sum(httpx.get(f"{base}/metrics", timeout=TIMEOUT).text, name, **labels)


def wait_for(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.1)


def feedback(base: str, prediction: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{base}/feedback", timeout=TIMEOUT, json={
        "prediction_id": prediction["prediction_id"], "label": prediction["label"]})


def test_feedback_reaches_the_replica_that_made_the_prediction(
    make_registry: Callable[..., Path], tmp_path: Path,
) -> None:
    root = make_registry({"tiny": {"1": 100, "2": 0}})
    with replica(root, tmp_path / "a.log") as a, replica(root, tmp_path / "b.log") as b:
        route = {"weights": {"1": 100}, "shadow": {"version": "2", "fraction": 1.0}}
        assert httpx.put(f"{a.base}/admin/routes/tiny", json=route, headers=ADMIN,
                         timeout=TIMEOUT).status_code == 200
        shadow_labels = [p["label"] for p in httpx.post(
            f"{a.base}/predict", json={"texts": TEXTS, "version": "2"},
            timeout=TIMEOUT).json()["predictions"]]
        predictions = httpx.post(f"{a.base}/predict", json={"texts": TEXTS},
                                 timeout=TIMEOUT).json()["predictions"]
        kept = httpx.post(f"{a.base}/predict", json={"text": "kept for later"},
                          timeout=TIMEOUT).json()["predictions"][0]
        wait_for(lambda: metric(a.base, "textclf_shadow_copies_total",
                                outcome="compared") == 2)
        signer = IdSigner(FEEDBACK_KEY.encode(), 3600)
        assert signer.verify(kept["prediction_id"]).origin == a.base

        # Sent to B, judged by A: the shadow's answer (held by A) is judged too.
        for p, shadow_label in zip(predictions, shadow_labels, strict=True):
            r = feedback(b.base, p)
            assert r.status_code == 200, r.text
            assert r.json()["shadow"] == {"version": "2", "correct": shadow_label == p["label"]}
        # A repeat is refused whichever replica it is sent to.
        assert feedback(b.base, predictions[0]).status_code == 409
        assert feedback(a.base, predictions[0]).status_code == 409
        assert metric(a.base, "textclf_feedback_answers_total", role="routed") == len(TEXTS)
        assert metric(a.base, "textclf_feedback_answers_total", role="shadow") == len(TEXTS)
        assert metric(b.base, "textclf_feedback_answers_total") == 0
        assert metric(b.base, "textclf_feedback_relayed_total",
                      outcome="relayed") == len(TEXTS) + 1

        # A is gone: B judges A's prediction itself; the shadow's answer went with A.
        a.stop()
        r = feedback(b.base, kept)
        assert r.status_code == 200, r.text
        assert r.json()["correct"] is True and r.json()["shadow"] == {"version": "2",
                                                                      "correct": None}
        assert metric(b.base, "textclf_feedback_relayed_total", outcome="unreachable") == 1
        assert metric(b.base, "textclf_feedback_answers_total", role="routed") == 1
        assert metric(b.base, "textclf_feedback_shadow_unjudged_total") == 1


def test_ids_without_a_replica_url_are_unchanged_and_an_origin_is_signed() -> None:
    signer = IdSigner(FEEDBACK_KEY.encode(), 3600)
    plain = PredictionRecord("tiny", "1", ("positive",), False, int(time.time()), "n-0", "2")
    assert signer.verify(signer.sign(plain)) == plain
    located = replace(plain, origin="http://10.0.0.7:8000")
    token = signer.sign(located)
    assert signer.verify(token).origin == "http://10.0.0.7:8000"
    assert len(token) > len(signer.sign(plain))  # the origin is inside the signed payload
