"""The peers of bench/load.py: each script, when its framework is installed, starts on a free
port, answers a sentence with the label the service gives it, and is stopped with every
process it forked; a peer whose package is missing is skipped with a line saying why."""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from registry import RoutingTable, read_default_model

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import load_peers  # noqa: E402
from load_servers import free_port, start, stop  # noqa: E402

MODELS = ROOT / "models"
TEXT = "a gorgeous , witty , seductive movie ."


def _default_version_dir() -> Path:
    name = read_default_model(MODELS)
    routes = RoutingTable.read(MODELS).routes[name]
    return MODELS / name / max(routes, key=routes.get)


@pytest.fixture(scope="module")
def service_label() -> str:
    with TestClient(create_app(Settings(models_dir=MODELS, intra_op_threads=1))) as client:
        response = client.post("/predict", json={"text": TEXT})
    assert response.status_code == 200, response.text
    return response.json()["predictions"][0]["label"]


def _ask(port: int, body: str) -> dict:
    payload = {"text": [TEXT] if body == "list" else TEXT}
    request = urllib.request.Request(f"http://127.0.0.1:{port}/predict",
                                     data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())
    return answer[0] if body == "list" else answer


@pytest.mark.parametrize("peer", load_peers.PEERS, ids=lambda p: p.name)
def test_a_peer_answers_with_the_services_label_and_stops(peer: load_peers.Peer,
                                                          service_label: str) -> None:
    reason = peer.missing()
    if reason:
        pytest.skip(f"{peer.name}: {reason}")
    port = free_port()
    proc = start(peer.command(_default_version_dir(), port, 1),
                 {"BENTOML_DO_NOT_TRACK": "true"}, port, peer.ready)
    try:
        answer = _ask(port, peer.body)
    finally:
        stop(proc)
    assert answer["label"] == service_label
    assert set(answer["scores"]) == {"negative", "positive"}
    assert answer["score"] == pytest.approx(max(answer["scores"].values()))
    assert proc.returncode is not None
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)  # no worker of the peer outlived it


def test_a_peer_whose_package_is_missing_is_skipped_with_the_reason(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    absent = load_peers.Peer("Nowhere", "no_such_serving_framework", "nowhere_peer.py",
                             "/health", "object", "no batching")
    monkeypatch.setattr(load_peers, "PEERS", (absent, replace(absent, workers=2)))
    assert load_peers.peer_runs(ROOT / "models", 1, ROOT / "x", 1, (1,), 1) == []
    out = capsys.readouterr().out
    assert out == ("-- Nowhere skipped: no_such_serving_framework is not installed "
                   "(pip install -e '.[bench]')\n")
