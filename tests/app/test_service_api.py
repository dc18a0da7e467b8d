"""The HTTP contract, through the real app (lifespan included) with tiny ONNX models."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from service_helpers import ADMIN, serve

TEXTS = ["a wonderful , brilliant film", "boring", "the plot was a mess and the actor weak"]


# ---- the contract ----


def test_predict_answers_in_input_order_with_version_header(client: TestClient) -> None:
    r = client.post("/predict", json={"texts": TEXTS, "model": "tiny"})
    assert r.status_code == 200
    body = r.json()
    assert (body["model"], body["version"]) == ("tiny", "1")
    assert r.headers["X-Model-Version"] == "tiny/1"
    assert len(body["predictions"]) == 3
    for text, p in zip(TEXTS, body["predictions"], strict=True):
        assert set(p) == {"label", "score", "scores", "prediction_id"}
        assert set(p["scores"]) == {"negative", "positive"}
        assert p["label"] == max(p["scores"], key=p["scores"].get)
        assert abs(sum(p["scores"].values()) - 1) < 1e-6
        one = client.post("/predict", json={"text": text, "model": "tiny"}).json()
        assert one["predictions"][0]["scores"] == pytest.approx(p["scores"], abs=1e-5)


def test_single_text_and_pinned_version(client: TestClient) -> None:
    r = client.post("/predict", json={"text": "good", "model": "tiny", "version": "2"})
    assert r.status_code == 200
    assert r.headers["X-Model-Version"] == "tiny/2"
    assert len(r.json()["predictions"]) == 1
    r = client.post("/predict", json={"text": "good", "model": "other"})
    assert r.headers["X-Model-Version"] == "other/1"
    assert set(r.json()["predictions"][0]["scores"]) == {"neg", "neutral", "pos"}


def test_model_is_required_when_several_are_served(client: TestClient) -> None:
    r = client.post("/predict", json={"text": "good"})
    assert r.status_code == 422
    assert "name one with 'model'" in r.json()["error"]["message"]


def test_default_model_when_only_one_is_routed(make_registry: Callable[..., Path]) -> None:
    with serve(make_registry({"tiny": {"1": 100}})) as c:
        r = c.post("/predict", json={"text": "good"})
        assert r.status_code == 200 and r.headers["X-Model-Version"] == "tiny/1"


def test_routing_key_is_sticky_and_splits(make_registry: Callable[..., Path]) -> None:
    with serve(make_registry({"tiny": {"1": 50, "2": 50}})) as c:
        seen: dict[str, str] = {}
        for i in range(40):
            key = f"user-{i % 10}"
            r = c.post("/predict", json={"text": "good"}, headers={"X-Routing-Key": key})
            version = r.headers["X-Model-Version"]
            assert seen.setdefault(key, version) == version
        assert set(seen.values()) == {"tiny/1", "tiny/2"}


def test_health_readiness_docs(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["models"] == {"tiny": ["1", "2"], "other": ["1"]}
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/predict", "/models", "/admin/routes/{name}", "/healthz", "/readyz"} <= set(paths)


def test_models_lists_registry_with_metrics_and_provider(client: TestClient) -> None:
    models = {m["name"]: m for m in client.get("/models").json()["models"]}
    assert set(models) == {"tiny", "other"}
    assert models["tiny"]["routes"] == {"1": 100.0, "2": 0.0}
    v1 = models["tiny"]["versions"][0]
    assert v1["version"] == "1" and v1["loaded"] and v1["weight"] == 100
    assert v1["provider"] == "CPUExecutionProvider"
    assert v1["model_bytes"] > 0 and "metrics" in v1 and v1["labels"] == ["negative", "positive"]


def test_no_routes_file_routes_the_newest_version(make_registry: Callable[..., Path]) -> None:
    with serve(make_registry(None)) as c:
        assert c.get("/readyz").status_code == 200
        r = c.post("/predict", json={"text": "good", "model": "tiny"})
        assert r.headers["X-Model-Version"] == "tiny/2"
        r = c.post("/predict", json={"text": "good", "model": "tiny", "version": "1"})
        assert r.status_code == 404 and "not loaded" in r.json()["error"]["message"]


def test_empty_registry_is_alive_but_not_ready(tmp_path: Path) -> None:
    with serve(tmp_path / "empty") as c:
        assert c.get("/healthz").status_code == 200
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["reason"] == "no models loaded"
        r = c.post("/predict", json={"text": "good"})
        assert r.status_code == 503 and "Retry-After" in r.headers
        listing = c.get("/models").json()
        assert listing["models"] == [] and "registry folder is missing" in listing["registry_error"]


def test_routed_model_missing_from_registry_is_not_ready(
    make_registry: Callable[..., Path],
) -> None:
    with serve(make_registry({"tiny": {"1": 100}, "ghost": {"1": 100}})) as c:
        r = c.get("/readyz")
        assert r.status_code == 503 and "ghost" in r.json()["reason"]
        assert c.post("/predict", json={"text": "good", "model": "tiny"}).status_code == 200


# ---- bad input: clear 4xx JSON, never a 500 ----


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"texts": []}, 422, "empty"),
        ({"texts": [""]}, 422, "empty or only whitespace"),
        ({"text": "   \n\t"}, 422, "empty or only whitespace"),
        ({"texts": ["ok", 3]}, 422, "valid string"),
        ({"text": None}, 422, "send 'texts'"),
        ({"texts": "not a list"}, 422, "valid list"),
        ({}, 422, "send 'texts'"),
        ({"text": "a", "texts": ["b"]}, 422, "not both"),
        ({"txt": "typo"}, 422, "Extra inputs"),
        ({"texts": ["good"] * 9}, 422, "limit is 8"),
        ({"text": "x" * 201}, 422, "limit is 200"),
        ({"text": "good", "model": "nope"}, 404, "unknown model"),
        ({"text": "good", "model": "tiny", "version": "9"}, 404, "unknown model version"),
        ({"text": "good", "model": "../../etc"}, 422, "invalid model name"),
        ({"text": "good", "model": "tiny", "version": "../2"}, 422, "invalid model version"),
        ({"text": "good", "model": "tiny", "version": ".."}, 422, "invalid model version"),
        ({"text": "good", "model": 7}, 422, "valid string"),
        (b'{"text": "\\ud800 lone surrogate"}', 422, "not valid Unicode"),
    ],
)
def test_bad_input_gets_a_clear_4xx(
    make_registry: Callable[..., Path], body: dict | bytes, status: int, needle: str,
) -> None:
    root = make_registry({"tiny": {"1": 100}, "other": {"1": 100}})
    with serve(root, max_batch_size=8, max_text_chars=200) as c:
        if isinstance(body, bytes):  # JSON that httpx would refuse to encode
            r = c.post("/predict", content=body, headers={"Content-Type": "application/json"})
        else:
            r = c.post("/predict", json=body)
        assert r.status_code == status, r.text
        assert needle in r.text
        assert set(r.json()["error"]) >= {"type", "message"}


def test_text_within_the_character_limit_is_truncated_not_refused(client: TestClient) -> None:
    r = client.post("/predict", json={"text": "good " * 399, "model": "tiny"})
    assert r.status_code == 200


def test_malformed_json(client: TestClient) -> None:
    r = client.post(
        "/predict", content=b'{"texts": ["a",', headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422 and r.json()["error"]["message"] == "request body is not valid JSON"


def test_oversized_body_is_413(client: TestClient) -> None:
    big = {"texts": ["good"], "model": "tiny", "pad": "x" * 1_100_000}
    r = client.post("/predict", json=big)
    assert r.status_code == 413 and r.json()["error"]["type"] == "payload_too_large"


def test_oversized_streamed_body_without_length_is_413(client: TestClient) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        yield b'{"texts": ["'
        for _ in range(200):
            yield b"x" * 10_000
        yield b'"]}'

    r = client.post("/predict", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413


def test_unknown_path_and_method_are_json(client: TestClient) -> None:
    assert client.get("/nope").json()["error"]["type"] == "not_found"
    assert client.get("/predict").status_code == 405


# ---- admin ----


def test_admin_needs_the_key(client: TestClient) -> None:
    put = {"weights": {"1": 50, "2": 50}}
    assert client.put("/admin/routes/tiny", json=put).status_code == 401
    r = client.put("/admin/routes/tiny", json=put, headers={"Authorization": "Bearer wrong-key!"})
    assert r.status_code == 403 and r.json()["error"]["type"] == "forbidden"
    r = client.put("/admin/routes/tiny", json=put, headers={"Authorization": "Basic abc"})
    assert r.status_code == 401
    assert client.delete("/admin/models/tiny/2").status_code == 401
    assert client.post("/admin/models/tiny/2/load").status_code == 401
    assert client.put("/admin/routes/tiny", json=put, headers=ADMIN).status_code == 200


def test_admin_is_disabled_without_a_key(make_registry: Callable[..., Path]) -> None:
    with serve(make_registry({"tiny": {"1": 100}}), api_key=None) as c:
        for headers in ({}, ADMIN):
            r = c.put("/admin/routes/tiny", json={"weights": {"1": 100}}, headers=headers)
            assert r.status_code == 403 and r.json()["error"]["type"] == "admin_disabled"
        assert c.post("/predict", json={"text": "good"}).status_code == 200


def test_weights_change_and_rollback(client: TestClient) -> None:
    def version() -> str:
        r = client.post("/predict", json={"text": "good", "model": "tiny"})
        return r.headers["X-Model-Version"]

    assert {version() for _ in range(5)} == {"tiny/1"}
    r = client.put("/admin/routes/tiny", json={"weights": {"1": 0, "2": 100}}, headers=ADMIN)
    assert r.status_code == 200 and r.json()["weights"] == {"1": 0, "2": 100}
    assert {version() for _ in range(5)} == {"tiny/2"}
    client.put("/admin/routes/tiny", json={"weights": {"1": 100, "2": 0}}, headers=ADMIN)
    assert {version() for _ in range(5)} == {"tiny/1"}
    assert client.get("/admin/routes", headers=ADMIN).json()["tiny"] == {"1": 100, "2": 0}


def test_route_changes_can_be_persisted(make_registry: Callable[..., Path]) -> None:
    root = make_registry({"tiny": {"1": 100, "2": 0}})
    with serve(root, persist_routes=True) as c:
        r = c.put("/admin/routes/tiny", json={"weights": {"1": 70, "2": 30}}, headers=ADMIN)
        assert r.status_code == 200
    assert json.loads((root / "routes.json").read_text()) == {"tiny": {"1": 70.0, "2": 30.0}}
    with serve(root) as c:  # a restart keeps the new split
        assert c.get("/admin/routes", headers=ADMIN).json() == {"tiny": {"1": 70, "2": 30}}


@pytest.mark.parametrize(
    ("weights", "status"),
    [({"1": -5}, 422), ({"1": 0}, 422), ({}, 422), ({"..": 100}, 422), ({"7": 100}, 409)],
)
def test_bad_weights_are_refused(client: TestClient, weights: dict, status: int) -> None:
    r = client.put("/admin/routes/tiny", json={"weights": weights}, headers=ADMIN)
    assert r.status_code == status, r.text
    assert client.get("/admin/routes", headers=ADMIN).json()["tiny"] == {"1": 100, "2": 0}


def test_unload_and_load(client: TestClient) -> None:
    r = client.delete("/admin/models/tiny/1", headers=ADMIN)
    assert r.status_code == 409 and "PUT /admin/routes/tiny" in r.json()["error"]["message"]
    assert client.delete("/admin/models/tiny/2", headers=ADMIN).status_code == 200
    r = client.post("/predict", json={"text": "good", "model": "tiny", "version": "2"})
    assert r.status_code == 404 and "not loaded" in r.json()["error"]["message"]
    r = client.put("/admin/routes/tiny", json={"weights": {"2": 100}}, headers=ADMIN)
    assert r.status_code == 409 and "load it" in r.json()["error"]["message"]
    r = client.post("/admin/models/tiny/2/load", headers=ADMIN)
    assert r.status_code == 200 and r.json()["provider"] == "CPUExecutionProvider"
    assert client.post("/admin/models/tiny/2/load", headers=ADMIN).json()["already_loaded"]
    r = client.post("/predict", json={"text": "good", "model": "tiny", "version": "2"})
    assert r.status_code == 200
    assert client.delete("/admin/models/tiny/9", headers=ADMIN).status_code == 404
    assert client.post("/admin/models/tiny/9/load", headers=ADMIN).status_code == 404
    assert client.post("/admin/models/..%2F..%2Fetc/1/load", headers=ADMIN).status_code in (
        404, 422,
    )
    assert client.post("/admin/models/..x/1/load", headers=ADMIN).status_code == 422


# ---- corrupt versions ----


def corrupt(folder: Path) -> None:
    data = bytearray((folder / "model.onnx").read_bytes())
    data[len(data) // 3] ^= 0xFF
    (folder / "model.onnx").write_bytes(bytes(data))


def test_corrupt_version_is_refused_at_start_while_others_serve(
    make_registry: Callable[..., Path], caplog: pytest.LogCaptureFixture,
) -> None:
    root = make_registry({"tiny": {"1": 50, "2": 50}, "other": {"1": 100}})
    corrupt(root / "tiny" / "2")
    with caplog.at_level("ERROR"), serve(root) as c:
        assert any(
            "refused to load tiny/2" in rec.message and "sha256" in rec.message
            for rec in caplog.records
        )
        assert c.get("/readyz").status_code == 200
        for i in range(20):
            r = c.post("/predict", json={"text": "good", "model": "tiny"},
                       headers={"X-Routing-Key": str(i)})
            assert r.status_code == 200 and r.headers["X-Model-Version"] == "tiny/1"
        versions = {m["name"]: m["versions"] for m in c.get("/models").json()["models"]}
        v2 = versions["tiny"][1]
        assert not v2["loaded"] and "sha256" in v2["load_error"]
        assert 'textclf_model_load_failures_total{model="tiny",version="2"} 1.0' in (
            c.get("/metrics").text
        )


def test_corrupt_version_is_refused_by_admin_load(make_registry: Callable[..., Path]) -> None:
    root = make_registry({"tiny": {"1": 100}})
    with serve(root) as c:
        corrupt(root / "tiny" / "2")
        r = c.post("/admin/models/tiny/2/load", headers=ADMIN)
        assert r.status_code == 422 and "sha256" in r.json()["error"]["message"]
        shutil.rmtree(root / "tiny" / "1")  # on disk only: the loaded copy keeps serving
        assert c.post("/predict", json={"text": "good"}).status_code == 200


# ---- metrics ----


def test_metrics_have_the_right_labels(client: TestClient) -> None:
    client.post("/predict", json={"texts": TEXTS, "model": "tiny"}, headers={"X-Routing-Key": "k"})
    client.post("/predict", json={"text": "good", "model": "tiny", "version": "2"})
    client.post("/predict", json={"texts": []})
    text = client.get("/metrics").text
    assert client.get("/metrics").headers["content-type"].startswith("text/plain")
    for line in [
        'textclf_request_duration_seconds_count{model="tiny",version="1"} 1.0',
        'textclf_requests_total{model="tiny",status="200",version="1"} 1.0',
        'textclf_requests_total{model="tiny",status="200",version="2"} 1.0',
        'textclf_requests_total{model="",status="422",version=""} 1.0',
        'textclf_inference_duration_seconds_count{model="tiny",version="1"} 1.0',
        'textclf_queue_wait_seconds_count{model="tiny",version="1"} 1.0',
        'textclf_batch_size_sum{model="tiny",version="1"} 3.0',
        'textclf_ab_assignments_total{method="hash",model="tiny",version="1"} 1.0',
        'textclf_ab_assignments_total{method="pinned",model="tiny",version="2"} 1.0',
        'textclf_model_loaded{model="tiny",provider="CPUExecutionProvider",version="1"} 1.0',
        'textclf_route_weight{model="tiny",version="1"} 100.0',
        'textclf_texts_total{model="tiny",version="1"} 3.0',
    ]:
        assert line in text, line
    for name in ["textclf_model_file_bytes", "textclf_model_load_seconds",
                 "textclf_queue_depth"]:
        assert f'{name}{{model="other",version="1"}}' in text


# ---- overload ----


def test_overload_answers_503_with_retry_after(make_registry: Callable[..., Path]) -> None:
    """Hold the model inside one batch, fill the one-slot queue, and the next request is
    refused at once instead of queueing. (One worker: with two, the second request
    would be running, not queued.)"""
    with serve(make_registry({"tiny": {"1": 100}}), max_queue=1, inference_workers=1) as c:
        loaded = c.app.state.manager.get(next(iter(c.app.state.manager.loaded())))
        entered, release = threading.Event(), threading.Event()
        real = loaded.batcher._predict

        def slow(texts: list[str]):  # type: ignore[no-untyped-def]
            entered.set()
            release.wait(timeout=60)
            return real(texts)

        loaded.batcher._predict = slow
        results: list[int] = []

        def send() -> None:
            results.append(c.post("/predict", json={"text": "good"}).status_code)

        threads = [threading.Thread(target=send) for _ in range(2)]
        threads[0].start()
        assert entered.wait(timeout=60)
        threads[1].start()
        deadline = time.monotonic() + 60
        while loaded.batcher.depth < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        r = c.post("/predict", json={"text": "good"})
        assert r.status_code == 503 and r.headers["Retry-After"] == "1"
        assert r.json()["error"]["type"] == "overloaded"
        release.set()
        for t in threads:
            t.join(timeout=60)
        assert results == [200, 200]
        assert 'textclf_requests_total{model="",status="503",version=""} 1.0' in (
            c.get("/metrics").text
        )


def test_request_timeout_is_504_and_the_batch_skips_it(
    make_registry: Callable[..., Path],
) -> None:
    with serve(make_registry({"tiny": {"1": 100}}), request_timeout_s=0.5, max_wait_ms=0) as c:
        loaded = c.app.state.manager.get(next(iter(c.app.state.manager.loaded())))
        release = threading.Event()
        real = loaded.batcher._predict

        def stuck(texts: list[str]):  # type: ignore[no-untyped-def]
            release.wait(timeout=60)
            return real(texts)

        loaded.batcher._predict = stuck
        try:
            r = c.post("/predict", json={"text": "good"})
            assert r.status_code == 504 and r.json()["error"]["type"] == "timeout"
        finally:
            release.set()
        loaded.batcher._predict = real
        assert c.post("/predict", json={"text": "good"}).status_code == 200


@pytest.mark.parametrize("allow_spinning, entry", [(True, "1"), (False, "0")])
def test_spinning_setting_reaches_every_loaded_session(
        make_registry: Callable[..., Path], allow_spinning: bool, entry: str) -> None:
    with serve(make_registry({"tiny": {"1": 50, "2": 50}}), allow_spinning=allow_spinning) as c:
        manager = c.app.state.manager
        sessions = [manager.get(ref).classifier.session for ref in manager.loaded()]
        assert len(sessions) == 2
        for session in sessions:
            options = session.get_session_options()
            assert options.get_session_config_entry("session.intra_op.allow_spinning") == entry
