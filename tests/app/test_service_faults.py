"""Faults: corrupt, truncated and mis-signed versions, a registry folder that vanishes at
run time, overload far above capacity and SIGTERM under load (real server processes)."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import socket
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from service_helpers import ADMIN, ServerProcess, rss_bytes, serve, without_ids

from registry import FileEntry, Manifest
from registry.store import sha256_file

ROUTES = {"tiny": {"1": 50, "2": 50}, "other": {"1": 100}}


def resign(folder: Path, rel: str) -> None:
    """Rewrite the manifest's checksum of one file to match it (a publish-time bug:
    the checksums pass, the file is still broken)."""
    manifest = Manifest.read(folder)
    path = folder / rel
    manifest.files[rel] = FileEntry(sha256=sha256_file(path), bytes=path.stat().st_size)
    manifest.write(folder)


def truncate(folder: Path, rel: str = "model.onnx") -> None:
    data = (folder / rel).read_bytes()
    (folder / rel).write_bytes(data[: len(data) // 2])


def wrong_checksum(folder: Path) -> None:
    manifest = Manifest.read(folder)
    entry = manifest.files["tokenizer.json"]
    manifest.files["tokenizer.json"] = FileEntry(sha256="0" * 64, bytes=entry.bytes)
    manifest.write(folder)


def broken_manifest(folder: Path) -> None:
    (folder / "manifest.json").write_text('{"name": "tiny", "version": ')


def signed_truncation(folder: Path) -> None:
    truncate(folder)
    resign(folder, "model.onnx")


def assert_tiny_1_serves(c: TestClient) -> None:
    assert c.get("/readyz").status_code == 200
    for i in range(20):
        r = c.post("/predict", json={"text": "good", "model": "tiny"},
                   headers={"X-Routing-Key": str(i)})
        assert r.status_code == 200 and r.headers["X-Model-Version"] == "tiny/1", r.text
    assert c.post("/predict", json={"text": "good", "model": "other"}).status_code == 200


# ---- damaged versions: refused with one clear log line; the others serve ----


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (truncate, "sha256"),  # truncated, manifest unchanged
        (signed_truncation, "refused to load tiny/2: "),  # checksums pass, onnxruntime refuses
        (wrong_checksum, "tokenizer.json does not match its sha256"),
        (broken_manifest, "invalid manifest.json"),
    ],
    ids=["truncated", "truncated-but-signed", "checksum-mismatch", "broken-manifest"],
)
def test_damaged_version_is_refused_at_start_while_others_serve(
    make_registry: Callable[..., Path], caplog: pytest.LogCaptureFixture,
    damage: Callable[[Path], None], reason: str,
) -> None:
    root = make_registry(ROUTES)
    damage(root / "tiny" / "2")
    with caplog.at_level("ERROR"), serve(root) as c:
        lines = [r.getMessage() for r in caplog.records if "tiny/2" in r.getMessage()]
        assert any("refused to load tiny/2" in m and reason in m for m in lines), lines
        assert all("\n" not in m for m in lines)  # one line, fit for a log
        assert_tiny_1_serves(c)
        r = c.post("/admin/models/tiny/2/load", headers=ADMIN)
        assert r.status_code == 422 and "cannot load tiny/2" in r.json()["error"]["message"]
        r = c.put("/admin/routes/tiny", json={"weights": {"2": 100}}, headers=ADMIN)
        assert r.status_code == 409  # no traffic to a version that is not loaded
        assert c.get("/models").status_code == 200


def test_damage_after_load_does_not_touch_the_loaded_copy(
    make_registry: Callable[..., Path],
) -> None:
    root = make_registry(ROUTES)
    with serve(root) as c:
        before = c.post("/predict", json={"text": "good", "version": "2", "model": "tiny"})
        truncate(root / "tiny" / "2")
        after = c.post("/predict", json={"text": "good", "version": "2", "model": "tiny"})
        assert after.status_code == 200
        assert without_ids(after.json()) == without_ids(before.json())


# ---- the registry folder disappears at run time ----


def test_registry_folder_removed_at_run_time(
    make_registry: Callable[..., Path], caplog: pytest.LogCaptureFixture,
) -> None:
    root = make_registry({"tiny": {"1": 100, "2": 0}, "other": {"1": 100}})
    with serve(root) as c:
        r = c.delete("/admin/models/tiny/2", headers=ADMIN)
        assert r.status_code == 200
        shutil.rmtree(root)
        with caplog.at_level("WARNING"):
            # Loaded versions keep serving: onnxruntime holds the model in memory.
            assert_tiny_1_serves(c)
            listing = c.get("/models")
            assert listing.status_code == 200
            body = listing.json()
            assert "registry folder is missing" in body["registry_error"]
            loaded = {(m["name"], v["version"]) for m in body["models"] for v in m["versions"]
                      if v["loaded"]}
            assert loaded == {("tiny", "1"), ("other", "1")}
            # A version that was not loaded cannot be now: a clear 4xx, never a 500.
            r = c.post("/admin/models/tiny/2/load", headers=ADMIN)
            assert r.status_code == 404 and "not in the registry" in r.text
            r = c.post("/predict", json={"text": "good", "model": "tiny", "version": "2"})
            assert r.status_code == 404
            r = c.post("/predict", json={"text": "good", "model": "gone"})
            assert r.status_code == 404
            # Weights among loaded versions still change (in memory).
            r = c.put("/admin/routes/other", json={"weights": {"1": 100}}, headers=ADMIN)
            assert r.status_code == 200
        messages = [r.getMessage() for r in caplog.records]
        assert any("registry folder" in m and "gone" in m and "tiny/2" in m for m in messages)
        assert any("registry folder" in m and "missing" in m for m in messages)


def test_route_change_that_cannot_be_saved_is_not_applied(
    make_registry: Callable[..., Path], caplog: pytest.LogCaptureFixture,
) -> None:
    root = make_registry({"tiny": {"1": 100, "2": 0}})
    with serve(root, persist_routes=True) as c:
        shutil.rmtree(root)
        with caplog.at_level("ERROR"):
            r = c.put("/admin/routes/tiny", json={"weights": {"2": 100}}, headers=ADMIN)
        assert r.status_code == 503 and r.json()["error"]["type"] == "registry_unavailable"
        assert any("not applied" in rec.getMessage() for rec in caplog.records)
        assert c.get("/admin/routes", headers=ADMIN).json() == {"tiny": {"1": 100, "2": 0}}
        assert c.post("/predict", json={"text": "good"}).headers["X-Model-Version"] == "tiny/1"


def test_one_version_folder_removed_while_loaded(make_registry: Callable[..., Path]) -> None:
    root = make_registry(ROUTES)
    with serve(root) as c:
        shutil.rmtree(root / "tiny" / "2")
        r = c.post("/predict", json={"text": "good", "model": "tiny", "version": "2"})
        assert r.status_code == 200
        tiny = next(m for m in c.get("/models").json()["models"] if m["name"] == "tiny")
        v2 = next(v for v in tiny["versions"] if v["version"] == "2")
        assert v2["loaded"] and v2["labels"] == ["negative", "positive"]


# ---- shutdown ----


def test_readyz_is_503_once_shutdown_starts(client: TestClient) -> None:
    assert client.get("/readyz").status_code == 200
    client.app.state.draining = True  # what GracefulServer.handle_exit sets on SIGTERM
    r = client.get("/readyz")
    assert r.status_code == 503 and r.json()["reason"] == "shutting down"
    assert client.get("/healthz").status_code == 200  # alive: do not restart it


def in_flight(base: str) -> float:
    for line in httpx.get(f"{base}/metrics", timeout=30).text.splitlines():
        if line.startswith("textclf_requests_in_flight "):
            return float(line.split()[1])
    raise AssertionError("no textclf_requests_in_flight metric")


def wait_until(
    condition: Callable[[], bool], what: str, log: Callable[[], str], timeout_s: float = 60,
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; server log:\n{log()}")
        time.sleep(0.05)


def refuses_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            return False
    except ConnectionRefusedError:
        return True


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response, read until the server closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def test_sigterm_finishes_in_flight_requests_refuses_new_ones_and_exits_0(
    make_registry: Callable[..., Path], tmp_path: Path,
) -> None:
    """Requests whose headers have arrived are in flight: hold their bodies back, send
    SIGTERM, see the listener close, then let the bodies through: every one is answered."""
    n_requests, n_texts = 8, 32
    server = ServerProcess(make_registry({"tiny": {"1": 100}}), tmp_path / "server.log")
    server.start()
    sockets: list[socket.socket] = []
    try:
        texts = [f"the film {i} was a wonderful , brilliant mess" for i in range(n_texts)]
        body = json.dumps({"texts": texts}).encode()
        head = (
            f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        for _ in range(n_requests):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=60)
            sock.sendall(head + body[:-8])
            sockets.append(sock)
        wait_until(lambda: in_flight(server.base) == n_requests, "requests in flight",
                   server.log)

        server.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        wait_until(lambda: refuses_connections(server.port), "the listener to close",
                   server.log)

        for sock in sockets:
            sock.sendall(body[-8:])
        answers = [read_response(sock) for sock in sockets]
        assert [status for status, _, _ in answers] == [200] * n_requests, server.log()
        for _, headers, payload in answers:
            assert headers["x-model-version"] == "tiny/1"
            assert len(json.loads(payload)["predictions"]) == n_texts

        assert server.proc.wait(timeout=120) == 0, server.log()  # type: ignore[union-attr]
        with pytest.raises(httpx.ConnectError):
            httpx.post(f"{server.base}/predict", json={"text": "good"}, timeout=10)
        log = server.log()
        assert "draining 1 loaded version" in log and "stopped cleanly" in log, log
        assert "Traceback" not in log, log
    finally:
        for sock in sockets:
            sock.close()
        server.stop()


# ---- overload far above capacity ----


def test_overload_sheds_with_503_and_retry_after_and_memory_stays_bounded(
    make_registry: Callable[..., Path], tmp_path: Path,
) -> None:
    """64 clients at once, each sending 64-text requests back to back, against a queue
    of 2 requests: the excess is refused at once with 503 + Retry-After, everything
    accepted is answered in full, nothing else fails, and memory does not balloon."""
    clients, per_client, n_texts = 64, 10, 64
    env = {"APP_MAX_QUEUE": "2", "APP_MAX_BATCH_SIZE": "64", "APP_MAX_WAIT_MS": "0"}
    with ServerProcess(make_registry({"tiny": {"1": 100}}), tmp_path / "server.log",
                       **env) as server:
        texts = [f"a {'very ' * (i % 12)}boring , dull story number {i}" for i in range(n_texts)]
        httpx.post(f"{server.base}/predict", json={"texts": texts}, timeout=60)  # warm up
        baseline = rss_bytes(server.pid)
        statuses: Counter[int] = Counter()
        problems: list[str] = []

        async def client(http: httpx.AsyncClient) -> None:
            for _ in range(per_client):
                try:
                    r = await http.post("/predict", json={"texts": texts})
                except httpx.HTTPError as exc:
                    problems.append(repr(exc))
                    continue
                statuses[r.status_code] += 1
                if r.status_code == 200:
                    if len(r.json()["predictions"]) != n_texts:
                        problems.append(f"short answer: {r.text[:200]}")
                elif r.status_code == 503:
                    if r.headers.get("Retry-After") != "1" or \
                            r.json()["error"]["type"] != "overloaded":
                        problems.append(f"503 without Retry-After: {r.headers} {r.text}")
                else:
                    problems.append(f"{r.status_code}: {r.text[:200]}")

        async def burst() -> None:
            limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
            async with httpx.AsyncClient(base_url=server.base, timeout=120,
                                         limits=limits) as http:
                await asyncio.gather(*(client(http) for _ in range(clients)))

        asyncio.run(burst())
        after = rss_bytes(server.pid)
        assert problems == [], problems[:5]
        assert sum(statuses.values()) == clients * per_client
        assert statuses[503] > 0 and statuses[200] > 0, statuses
        assert after < baseline + 200 * 2**20, (baseline, after)
        # Still healthy afterwards.
        assert httpx.get(f"{server.base}/readyz", timeout=30).status_code == 200
        log = server.log()
    assert "Traceback" not in log
