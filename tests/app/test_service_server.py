"""A real `python -m app` process (the Dockerfile's command) on 127.0.0.1: 32 concurrent
clients while weights change, roll back, and a version is unloaded and reloaded: zero
failed or dropped requests, and every answer names the version that produced it."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from service_helpers import ADMIN, ServerProcess

CLIENTS = 32
TEXTS = ["good film", "a boring , dull story"]
# Every weight table the schedule below sets, the start-up one included.
SCHEDULE = [
    ("PUT", "/admin/routes/tiny", {"weights": {"1": 50, "2": 50}}),
    ("PUT", "/admin/routes/tiny", {"weights": {"1": 0, "2": 100}}),
    ("PUT", "/admin/routes/tiny", {"weights": {"1": 100, "2": 0}}),  # rollback
    ("DELETE", "/admin/models/tiny/2", None),  # right after its traffic stopped
    ("POST", "/admin/models/tiny/2/load", None),
    ("PUT", "/admin/routes/tiny", {"weights": {"1": 50, "2": 50}}),
    ("PUT", "/admin/routes/tiny", {"weights": {"1": 100, "2": 0}}),
    ("DELETE", "/admin/models/tiny/2", None),
]
START_WEIGHTS = {"1": 90, "2": 10}


@pytest.fixture
def server(make_registry: Callable[..., Path], tmp_path: Path) -> Iterator[str]:
    with ServerProcess(make_registry({"tiny": START_WEIGHTS}), tmp_path / "server.log") as s:
        yield s.base


def ever_weighted() -> set[str]:
    weights = [START_WEIGHTS] + [body["weights"] for _, _, body in SCHEDULE if body]
    return {f"tiny/{v}" for w in weights for v, x in w.items() if x > 0}


def reference_scores(base: str) -> dict[tuple[str, str], dict[str, float]]:
    """Each version's scores for each text, asked alone with the version pinned."""
    out = {}
    with httpx.Client(base_url=base, timeout=60) as http:
        for version in ("1", "2"):
            for text in TEXTS:
                r = http.post("/predict", json={"text": text, "version": version})
                assert r.status_code == 200, r.text
                out[(version, text)] = r.json()["predictions"][0]["scores"]
    return out


def test_weight_changes_and_rollback_under_load_drop_nothing(server: str) -> None:
    reference = reference_scores(server)
    # The two versions must answer differently, or the check below proves nothing.
    assert reference[("1", TEXTS[0])] != reference[("2", TEXTS[0])]
    stop = threading.Event()
    failures: list[str] = []
    served: Counter[str] = Counter()
    lock = threading.Lock()

    def check(r: httpx.Response, texts: list[str]) -> str | None:
        if r.status_code != 200:
            return f"{r.status_code} {r.text[:200]}"
        body = r.json()
        header = r.headers.get("X-Model-Version")
        if header != f"{body['model']}/{body['version']}":
            return f"header {header} but body names {body['model']}/{body['version']}"
        if len(body["predictions"]) != len(texts):
            return f"{len(body['predictions'])} predictions for {len(texts)} texts"
        for text, p in zip(texts, body["predictions"], strict=True):
            want = reference[(body["version"], text)]
            if any(abs(p["scores"][k] - want[k]) > 1e-5 for k in want):
                return f"{header} answered {p['scores']} for {text!r}, which is not its answer"
        return None

    def client(i: int) -> None:
        done = 0
        with httpx.Client(base_url=server, timeout=60) as http:
            while (not stop.is_set() or done < 10) and done < 100_000:
                texts = TEXTS[: 1 + (done + i) % 2]
                headers = {"X-Routing-Key": f"c{i}-{done}"} if i % 2 else {}
                try:
                    r = http.post("/predict", json={"texts": texts, "model": "tiny"},
                                  headers=headers)
                    problem = check(r, texts)
                    with lock:
                        if problem is None:
                            served[r.headers["X-Model-Version"]] += 1
                        else:
                            failures.append(problem)
                except httpx.HTTPError as exc:
                    with lock:
                        failures.append(repr(exc))
                done += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    try:
        with httpx.Client(base_url=server, headers=ADMIN, timeout=60) as admin:
            for method, url, body in SCHEDULE:
                time.sleep(0.3)  # let traffic flow between changes
                r = admin.request(method, url, json=body)
                assert r.status_code == 200, r.text
            time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert failures == []
    assert set(served) <= ever_weighted()
    assert served["tiny/1"] > 0 and served["tiny/2"] > 0
    metrics = httpx.get(f"{server}/metrics", timeout=30).text
    assert 'textclf_model_loaded{model="tiny",provider="CPUExecutionProvider",version="2"} 0.0' \
        in metrics
    assert "textclf_batch_size_bucket" in metrics
