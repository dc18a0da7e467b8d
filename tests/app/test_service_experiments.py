"""A/B experiments through the service: shadow copies never touch a client's answer,
feedback on signed prediction ids, counts that add up across replicas, the report's
verdict, and bad route changes refused whole."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from service_helpers import ADMIN, metric_sum, serve

from app.classifier import Prediction
from app.experiments.ids import IdSigner, PredictionRecord
from registry import ModelRef, RoutingTable

FEEDBACK_KEY = "a-shared-feedback-key-for-tests"
TEXTS = ["a wonderful film", "dull and boring", "fine", "not good at all"]
WAIT_S = 60  # generous: a loaded 2-core machine


def metric(client: TestClient, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include `labels`."""
    return metric_sum(client.get("/metrics").text, name, **labels)


def wait_for(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.05)


def set_route(client: TestClient, body: dict[str, Any]) -> Any:
    return client.put("/admin/routes/tiny", json=body, headers=ADMIN)


def answers(response: Any) -> list[tuple[str, dict[str, float]]]:
    return [(p["label"], p["scores"]) for p in response.json()["predictions"]]


@pytest.fixture
def shadowed(make_registry: Callable[..., Path]) -> Iterator[TestClient]:
    """tiny routed 100 % to 1, with 2 as its shadow on every request; two copies at
    most pending."""
    root = make_registry({"tiny": {"1": 100, "2": 0}})
    with serve(root, feedback_key=FEEDBACK_KEY, shadow_max_pending=2) as client:
        assert set_route(client, {"weights": {"1": 100},
                                  "shadow": {"version": "2", "fraction": 1.0}}).status_code == 200
        yield client


def patch_shadow(client: TestClient, predict: Callable[[list[str]], Sequence[Prediction]]) -> None:
    """Replace version 2's predict for shadow copies (its batcher keeps the real one)."""
    loaded = client.app.state.manager.get(ModelRef(name="tiny", version="2"))  # type: ignore[attr-defined]
    loaded.classifier.predict = predict


def test_a_stuck_shadow_leaves_routed_answers_intact_and_drops_its_copies(
    shadowed: TestClient,
) -> None:
    expected = answers(shadowed.post("/predict", json={"texts": TEXTS, "version": "1"}))
    release = threading.Event()

    def stuck(texts: list[str]) -> list[Prediction]:
        release.wait(WAIT_S)  # the copy sleeps until the test has all its answers
        raise RuntimeError("the shadow gave up")

    patch_shadow(shadowed, stuck)
    try:
        # Each routed request completes while every copy is still stuck: had a client
        # waited for its copy, it would have hit the request time-out (504).
        for _ in range(6):
            r = shadowed.post("/predict", json={"texts": TEXTS})
            assert r.status_code == 200 and r.json()["version"] == "1"
            assert answers(r) == expected
        labels = {"model": "tiny", "version": "1", "shadow_version": "2"}
        assert metric(shadowed, "textclf_shadow_copies_total", outcome="saturated",
                      **labels) == 4  # two pending, four dropped and counted
    finally:
        release.set()
    wait_for(lambda: metric(shadowed, "textclf_shadow_copies_total", outcome="failed",
                            **labels) == 2)


def test_a_failing_shadow_leaves_routed_answers_intact(shadowed: TestClient) -> None:
    expected = answers(shadowed.post("/predict", json={"texts": TEXTS, "version": "1"}))

    def failing(texts: list[str]) -> list[Prediction]:
        raise RuntimeError("broken shadow")

    patch_shadow(shadowed, failing)
    labels = {"model": "tiny", "version": "1", "shadow_version": "2"}
    for i in range(3):
        r = shadowed.post("/predict", json={"texts": TEXTS})
        assert r.status_code == 200 and answers(r) == expected
        # One at a time, so none is dropped for saturation: all three fail.
        wait_for(lambda i=i: metric(shadowed, "textclf_shadow_copies_total",
                                    outcome="failed", **labels) == i + 1)


def test_shadow_comparison_and_feedback_judge_both_versions(shadowed: TestClient) -> None:
    shadow = answers(shadowed.post("/predict", json={"texts": TEXTS, "version": "2"}))
    r = shadowed.post("/predict", json={"texts": TEXTS})
    routed = answers(r)
    labels = {"model": "tiny", "version": "1", "shadow_version": "2"}
    wait_for(lambda: metric(shadowed, "textclf_shadow_copies_total", outcome="compared",
                            **labels) == 1)
    agreeing = sum(a[0] == b[0] for a, b in zip(routed, shadow, strict=True))
    assert metric(shadowed, "textclf_shadow_texts_total", **labels) == len(TEXTS)
    assert metric(shadowed, "textclf_shadow_agreements_total", **labels) == agreeing
    for p, (shadow_label, _) in zip(r.json()["predictions"], shadow, strict=True):
        f = shadowed.post("/feedback", json={"prediction_id": p["prediction_id"],
                                             "label": p["label"]})
        assert f.status_code == 200, f.text
        assert f.json() == {"model": "tiny", "version": "1", "correct": True,
                            "shadow": {"version": "2", "correct": shadow_label == p["label"]}}
    assert metric(shadowed, "textclf_feedback_answers_total", version="1", role="routed",
                  outcome="correct") == len(TEXTS)
    assert metric(shadowed, "textclf_feedback_answers_total", version="2",
                  role="shadow") == len(TEXTS)
    report = shadowed.get("/admin/experiments/tiny", headers=ADMIN).json()
    assert report["shadow"] == {"version": "2", "fraction": 1.0}
    v2 = report["versions"]["2"]
    assert v2["role"] == "shadow" and v2["feedback"] == len(TEXTS)
    assert v2["agreement"]["1"]["texts"] == len(TEXTS)
    assert report["versions"]["1"]["accuracy"] == 1.0
    # The same feedback twice is refused: one prediction, one vote per replica.
    again = shadowed.post("/feedback", json={"prediction_id": p["prediction_id"],
                                             "label": p["label"]})
    assert again.status_code == 409


def test_forged_expired_and_mislabelled_feedback_is_refused(shadowed: TestClient) -> None:
    p = shadowed.post("/predict", json={"text": "good", "version": "1"}).json()["predictions"][0]
    prefix, payload, signature = p["prediction_id"].split(".")
    other = "negative" if p["label"] == "positive" else "positive"
    forged = IdSigner(b"not the service's key, but long", 3600).sign(
        PredictionRecord("tiny", "1", (other,), False, int(time.time()), "x-0"))
    for bad in (f"{prefix}.{payload}x.{signature}", forged, "nonsense"):
        r = shadowed.post("/feedback", json={"prediction_id": bad, "label": other})
        assert r.status_code == 403 and r.json()["error"]["type"] == "invalid_prediction_id"
    old = IdSigner(FEEDBACK_KEY.encode(), 3600).sign(
        PredictionRecord("tiny", "1", (other,), False, int(time.time()) - 30 * 86400, "y-0"))
    r = shadowed.post("/feedback", json={"prediction_id": old, "label": other})
    assert r.status_code == 410 and "APP_FEEDBACK_MAX_AGE_S" in r.json()["error"]["message"]
    for label in ("no-such-label", ["positive"]):
        r = shadowed.post("/feedback", json={"prediction_id": p["prediction_id"],
                                             "label": label})
        assert r.status_code == 422, r.text
    assert "its labels are negative, positive" in shadowed.post(
        "/feedback", json={"prediction_id": p["prediction_id"], "label": "x"}).text
    assert metric(shadowed, "textclf_feedback_answers_total") == 0
    assert metric(shadowed, "textclf_feedback_refused_total", reason="invalid_id") == 3
    assert metric(shadowed, "textclf_feedback_refused_total", reason="expired") == 1


def test_counts_add_up_across_two_replicas_sharing_a_key(
    make_registry: Callable[..., Path],
) -> None:
    root = make_registry({"tiny": {"1": 100, "2": 0}})
    with serve(root, feedback_key=FEEDBACK_KEY) as a, serve(root, feedback_key=FEEDBACK_KEY) as b:
        ids = [(p["prediction_id"], p["label"]) for c in (a, b) for p in
               c.post("/predict", json={"texts": TEXTS}).json()["predictions"]]
        # Feedback goes to either replica, whoever answered: every id is accepted.
        for i, (prediction_id, label) in enumerate(ids):
            r = (a if i % 3 else b).post("/feedback", json={"prediction_id": prediction_id,
                                                           "label": label})
            assert r.status_code == 200, r.text
        scraped = [metric(c, "textclf_feedback_answers_total", model="tiny", version="1",
                          outcome="correct") for c in (a, b)]
        assert all(n > 0 for n in scraped) and sum(scraped) == len(ids)
    with serve(root, feedback_key="another-key-another-replica") as c:
        r = c.post("/feedback", json={"prediction_id": ids[0][0], "label": ids[0][1]})
        assert r.status_code == 403


def test_feedback_for_an_unloaded_version_still_counts(
    make_registry: Callable[..., Path],
) -> None:
    root = make_registry({"tiny": {"1": 100, "2": 0}})
    with serve(root) as client:
        p = client.post("/predict", json={"text": "good", "version": "2"}).json()["predictions"][0]
        assert client.delete("/admin/models/tiny/2", headers=ADMIN).status_code == 200
        r = client.post("/feedback", json={"prediction_id": p["prediction_id"],
                                           "label": p["label"]})
        assert r.status_code == 200 and r.json()["version"] == "2" and r.json()["correct"]
        # Its labels still come from the registry: an unknown one is still refused.
        p2 = client.post("/predict", json={"text": "bad"}).json()["predictions"][0]
        assert client.post("/feedback", json={"prediction_id": p2["prediction_id"],
                                              "label": "nope"}).status_code == 422
        assert metric(client, "textclf_feedback_answers_total", version="2",
                      outcome="correct") == 1
        report = client.get("/admin/experiments/tiny", headers=ADMIN).json()
        assert report["versions"]["2"]["feedback"] == 1


def _label_feedback(client: TestClient, version: str, right: int, wrong: int) -> None:
    """Pinned predictions of `version`, `right` of them confirmed and `wrong` refuted."""
    sent = 0
    while sent < right + wrong:
        texts = [f"text number {sent + i}" for i in range(min(16, right + wrong - sent))]
        r = client.post("/predict", json={"texts": texts, "version": version})
        for p in r.json()["predictions"]:
            other = "negative" if p["label"] == "positive" else "positive"
            label = p["label"] if sent < right else other
            assert client.post("/feedback", json={"prediction_id": p["prediction_id"],
                                                  "label": label}).status_code == 200
            sent += 1


def test_the_report_gives_a_verdict(make_registry: Callable[..., Path]) -> None:
    root = make_registry({"tiny": {"1": 90, "2": 10}})
    with serve(root) as client:
        _label_feedback(client, "1", right=45, wrong=5)
        _label_feedback(client, "2", right=35, wrong=15)
        report = client.get("/admin/experiments/tiny", headers=ADMIN).json()
        assert report["baseline"] == "1"
        v1, v2 = report["versions"]["1"], report["versions"]["2"]
        assert (v1["feedback"], v1["correct"], v1["accuracy"]) == (50, 45, 0.9)
        low, high = v2["accuracy_ci95"]
        assert low < 0.7 < high
        # 45/50 against 35/50: z = 2.5, p = 0.0124 (the hand-computed case).
        assert v2["comparison"]["p_value"] == pytest.approx(0.01242, abs=1e-4)
        assert v2["comparison"]["verdict"] == "1 is better than 2 at p = 0.012"
        assert report["verdicts"] == ["1 is better than 2 at p = 0.012"]
        assert client.get("/admin/experiments/nosuch", headers=ADMIN).status_code == 404
        assert client.get("/admin/experiments/tiny").status_code == 401


@pytest.mark.parametrize("name, body, status", [
    ("nosuch", {"weights": {"1": 100}}, 409),
    ("nosuch", {"weights": {"1": 100}, "shadow": {"version": "2", "fraction": 0.5}}, 409),
    ("tiny", {"weights": {"1": 100}, "shadow": {"version": "1", "fraction": 0.5}}, 409),
    ("tiny", {"weights": {"1": 100, "2": 0}, "shadow": {"version": "1", "fraction": 1}}, 409),
    ("tiny", {"weights": {"1": 100}, "shadow": {"version": "9", "fraction": 0.5}}, 409),
    ("tiny", {"weights": {"1": 100}, "shadow": {"version": "2", "fraction": 1.5}}, 422),
    ("tiny", {"weights": {"1": 100}, "shadow": {"version": "2", "fraction": -0.1}}, 422),
    ("tiny", {"weights": {"1": 100}, "shadow": {"version": "2"}}, 422),
    ("tiny", {"weights": {"1": 100}, "shadow": {"version": "../2", "fraction": 0.5}}, 422),
])
def test_bad_route_changes_are_refused_whole(
    make_registry: Callable[..., Path], name: str, body: dict[str, Any], status: int,
) -> None:
    root = make_registry({"tiny": {"1": 90, "2": 10}})
    with serve(root, persist_routes=True) as client:
        set_route(client, {"weights": {"1": 90, "2": 10},
                           "shadow": {"version": "2", "fraction": 0.25}})
        before = (client.get("/admin/routes", headers=ADMIN).json(),
                  client.get("/models").json(), (root / "routes.json").read_text())
        r = client.put(f"/admin/routes/{name}", json=body, headers=ADMIN)
        assert r.status_code == status, r.text
        assert set(r.json()) == {"error"} and r.json()["error"]["message"]
        after = (client.get("/admin/routes", headers=ADMIN).json(),
                 client.get("/models").json(), (root / "routes.json").read_text())
        assert after == before


def test_the_shadow_persists_and_its_version_is_loaded_at_start(
    make_registry: Callable[..., Path],
) -> None:
    root = make_registry({"tiny": {"1": 100}})
    with serve(root, persist_routes=True) as client:
        assert client.post("/admin/models/tiny/2/load", headers=ADMIN).status_code == 200
        r = set_route(client, {"weights": {"1": 100},
                               "shadow": {"version": "2", "fraction": 0.5}})
        assert r.json()["shadow"] == {"version": "2", "fraction": 0.5}
        # The shadow cannot be unloaded while it gets copies.
        assert client.delete("/admin/models/tiny/2", headers=ADMIN).status_code == 409
    with serve(root) as client:
        tiny = next(m for m in client.get("/models").json()["models"] if m["name"] == "tiny")
        assert tiny["shadow"] == {"version": "2", "fraction": 0.5}
        assert {v["version"]: v["loaded"] for v in tiny["versions"]} == {"1": True, "2": True}
        # A PUT without a shadow removes it.
        assert set_route(client, {"weights": {"1": 100}}).json()["shadow"] is None
        assert client.delete("/admin/models/tiny/2", headers=ADMIN).status_code == 200


def test_multi_label_feedback_is_a_label_set(tmp_path: Path) -> None:
    from tiny_models import MULTI_LABELS, publish_multi_label_versions

    root = tmp_path / "models"
    root.mkdir()
    # The same constant model: version 2 answers the first label, version 3 all three.
    publish_multi_label_versions(root, {"2": [0.9, 0.99, 0.99], "3": [0.9, 0.4, 0.01]},
                                 (3.0, 0.0, -3.0))
    RoutingTable(routes={"tags": {"2": 100, "3": 0}}).write(root)
    with serve(root) as client:
        assert client.put("/admin/routes/tags", headers=ADMIN, json={
            "weights": {"2": 100}, "shadow": {"version": "3", "fraction": 1.0}}).status_code == 200
        p = client.post("/predict", json={"text": "anything"}).json()["predictions"][0]
        assert p["labels"] == [MULTI_LABELS[0]]
        labels = {"model": "tags", "version": "2", "shadow_version": "3"}
        wait_for(lambda: metric(client, "textclf_shadow_texts_total", **labels) == 1)
        assert metric(client, "textclf_shadow_agreements_total", **labels) == 0
        single = client.post("/feedback", json={"prediction_id": p["prediction_id"],
                                                "label": MULTI_LABELS[0]})
        assert single.status_code == 422 and "list of labels" in single.text
        r = client.post("/feedback", json={"prediction_id": p["prediction_id"],
                                           "label": [MULTI_LABELS[0]]})
        assert r.status_code == 200, r.text
        assert r.json()["correct"] is True and r.json()["shadow"] == {"version": "3",
                                                                      "correct": False}
