"""`POST /predict`'s fast path (`app.api.fast_predict`) answers exactly as the route does:
the same bodies, statuses and headers, and what it declines reaches the route unchanged."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from service_helpers import settings_for, without_ids

from app.api.fast_predict import FastPredictMiddleware, simple_body
from app.main import create_app

ROUTES = {"tiny": {"1": 100, "2": 0}, "other": {"1": 100}}

# (body, headers) pairs: answers, refusals of the texts, unknown names, pins, routing keys.
REQUESTS: list[tuple[Any, dict[str, str]]] = [
    ({"text": "a wonderful film", "model": "tiny"}, {}),
    ({"texts": ["good", "dull and boring", "fine"], "model": "tiny"}, {}),
    ({"texts": ["good"], "model": "tiny", "version": "2"}, {}),
    ({"text": "good", "model": "tiny"}, {"X-Routing-Key": "user-7"}),
    ({"text": "good", "model": "tiny", "text2": 1}, {}),  # unknown field: the route's 422
    ({"texts": "good", "model": "tiny"}, {}),  # a string for a list
    ({"texts": ["good", 3], "model": "tiny"}, {}),
    ({"text": "   ", "model": "tiny"}, {}),
    ({"texts": [], "model": "tiny"}, {}),
    ({"texts": ["x"] * 500, "model": "tiny"}, {}),
    ({"text": "good", "texts": ["good"], "model": "tiny"}, {}),
    ({"model": "tiny"}, {}),
    ({"text": "good"}, {}),  # two models served: name one
    ({"text": "good", "model": "nope"}, {}),
    ({"text": "good", "model": "../etc"}, {}),
    ({"text": "good", "model": "tiny", "version": "9"}, {}),
    ([1, 2], {}),
    ("not json at all", {}),
    ({"text": "good", "model": "tiny"}, {"X-Routing-Key": "k" * 300}),
    ('{"text": "\\ud800", "model": "tiny"}', {}),
]


def _fast_path_removed(app: Any) -> Any:
    app.user_middleware = [m for m in app.user_middleware if m.cls is not FastPredictMiddleware]
    return app


@pytest.fixture
def clients(make_registry: Callable[..., Path]) -> Iterator[tuple[TestClient, TestClient]]:
    root = make_registry(ROUTES)
    fast = create_app(settings_for(root))
    route_only = _fast_path_removed(create_app(settings_for(root)))
    with TestClient(fast) as a, TestClient(route_only) as b:
        yield a, b


def _post(client: TestClient, body: Any, headers: dict[str, str]) -> tuple[int, Any, str | None]:
    raw = body if isinstance(body, str) else json.dumps(body)
    r = client.post("/predict", content=raw,
                    headers={"Content-Type": "application/json", **headers})
    body = r.json()
    ids = [p.get("prediction_id") for p in body.get("predictions", [])]
    assert all(ids) and len(set(ids)) == len(ids)  # every answer can be given feedback
    return r.status_code, without_ids(body), r.headers.get("x-model-version")


@pytest.mark.parametrize(("body", "headers"), REQUESTS)
def test_the_fast_path_answers_as_the_route_does(
    clients: tuple[TestClient, TestClient], body: Any, headers: dict[str, str],
) -> None:
    fast, route_only = clients
    assert _post(fast, body, headers) == _post(route_only, body, headers)


def test_the_fast_path_is_taken_for_a_simple_body(
    make_registry: Callable[..., Path], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the route's handler broken, a simple body is still answered (the fast path
    did it), and a declined one reaches the broken route."""
    import app.api.predict as predict_module

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the route was called")

    monkeypatch.setattr(predict_module, "clean_texts", broken)
    app = create_app(settings_for(make_registry(ROUTES)))
    with TestClient(app, raise_server_exceptions=False) as fast:
        assert _post(fast, {"text": "good", "model": "tiny"}, {})[0] == 200
        # orjson refuses a lone surrogate, so the route (here broken) reads this one.
        assert _post(fast, '{"text": "\\ud800", "model": "tiny"}', {})[0] == 500


@pytest.mark.parametrize(("raw", "accepted"), [
    (b'{"text": "a"}', True),
    (b'{"texts": ["a", "b"], "model": "m", "version": "1"}', True),
    (b'{"text": null, "texts": ["a"]}', True),
    (b'{"text": 1}', False),
    (b'{"texts": ["a", null]}', False),
    (b'{"texts": "a"}', False),
    (b'{"model": ["m"]}', False),
    (b'{"text": "a", "other": 1}', False),
    (b'["a"]', False),
    (b'{"text": "\\ud800"}', False),  # a lone surrogate: the route names the text
    (b'{"text": ', False),
])
def test_simple_body(raw: bytes, accepted: bool) -> None:
    assert (simple_body(raw) is not None) is accepted


def test_an_answer_that_cannot_be_serialized_is_the_routes_500(
    make_registry: Callable[..., Path], monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Both paths given an answer JSON cannot write: the same JSON 500, logged, with no
    X-Model-Version (no version's answer went out). The fast path answers it itself: the
    error does not escape the app (the route's does, to the server's error handler)."""
    import app.api.fast_predict as fast_module
    import app.api.predict as predict_module

    def unserializable(served: Any) -> dict[str, Any]:
        return {"model": served.ref.name, "predictions": [object()]}

    monkeypatch.setattr(fast_module, "answer_content", unserializable)
    monkeypatch.setattr(predict_module, "answer_content", unserializable)
    root = make_registry(ROUTES)
    body = {"text": "good", "model": "tiny"}
    answers = []
    for app, escapes in ((create_app(settings_for(root)), False),
                         (_fast_path_removed(create_app(settings_for(root))), True)):
        with TestClient(app, raise_server_exceptions=not escapes) as client:
            caplog.clear()
            r = client.post("/predict", json=body)
            answers.append((r.status_code, r.json(), r.headers.get("x-model-version")))
            assert "unhandled error on POST /predict" in caplog.text
    assert answers[0] == answers[1] == (
        500, {"error": {"type": "internal_error", "message": "internal server error"}}, None)
