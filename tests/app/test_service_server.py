"""A real `python -m app` process (the Dockerfile's command) on 127.0.0.1: 32 concurrent
clients while weights change and a version is unloaded and reloaded: zero failures."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from service_helpers import ADMIN, API_KEY, image_command

REPO = Path(__file__).resolve().parents[2]
CLIENTS = 32


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(make_registry: Callable[..., Path], tmp_path: Path) -> Iterator[str]:
    root = make_registry({"tiny": {"1": 90, "2": 10}})
    port = free_port()
    # The image's command, with this machine's interpreter, host and port.
    command = [sys.executable if part == "python" else part for part in image_command()]
    command = [
        "127.0.0.1" if part == "0.0.0.0" else str(port) if part == "8000" else part
        for part in command
    ]
    env = dict(os.environ, APP_MODELS_DIR=str(root), APP_API_KEY=API_KEY,
               APP_INTRA_OP_THREADS="1", PYTHONPATH=str(REPO))
    log = open(tmp_path / "server.log", "wb")
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"server exited: {(tmp_path / 'server.log').read_text()}")
            try:
                if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"not ready: {(tmp_path / 'server.log').read_text()}")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        log.close()


def test_weight_changes_and_unload_under_load_drop_nothing(server: str) -> None:
    stop = threading.Event()
    failures: list[str] = []
    served: Counter[str] = Counter()
    lock = threading.Lock()

    def client(i: int) -> None:
        done = 0
        with httpx.Client(base_url=server, timeout=60) as http:
            while not stop.is_set() or done < 10:
                texts = ["good film", "a boring , dull story"][: 1 + (done + i) % 2]
                headers = {"X-Routing-Key": f"c{i}-{done}"} if i % 2 else {}
                try:
                    r = http.post("/predict", json={"texts": texts, "model": "tiny"},
                                  headers=headers)
                    ok = r.status_code == 200 and len(r.json()["predictions"]) == len(texts)
                    with lock:
                        if ok:
                            served[r.headers["X-Model-Version"]] += 1
                        else:
                            failures.append(f"{r.status_code} {r.text[:200]}")
                except httpx.HTTPError as exc:
                    with lock:
                        failures.append(repr(exc))
                done += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    try:
        with httpx.Client(base_url=server, headers=ADMIN, timeout=60) as admin:

            def step(method: str, url: str, **kw: object) -> None:
                time.sleep(0.3)  # let traffic flow between changes
                r = admin.request(method, url, **kw)  # type: ignore[arg-type]
                assert r.status_code == 200, r.text

            step("PUT", "/admin/routes/tiny", json={"weights": {"1": 50, "2": 50}})
            step("PUT", "/admin/routes/tiny", json={"weights": {"1": 0, "2": 100}})
            step("PUT", "/admin/routes/tiny", json={"weights": {"1": 100, "2": 0}})  # rollback
            step("DELETE", "/admin/models/tiny/2")  # right after its traffic stopped
            step("POST", "/admin/models/tiny/2/load")
            step("PUT", "/admin/routes/tiny", json={"weights": {"1": 50, "2": 50}})
            step("PUT", "/admin/routes/tiny", json={"weights": {"1": 100, "2": 0}})
            step("DELETE", "/admin/models/tiny/2")
            time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert failures == []
    assert served["tiny/1"] > 0 and served["tiny/2"] > 0
    metrics = httpx.get(f"{server}/metrics", timeout=30).text
    assert 'textclf_model_loaded{model="tiny",provider="CPUExecutionProvider",version="2"} 0.0' \
        in metrics
    assert "textclf_batch_size_bucket" in metrics
