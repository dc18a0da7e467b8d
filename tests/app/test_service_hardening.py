"""What an attacker or a bad day sends: non-finite route weights, huge headers, requests
that never finish arriving, a pinned request racing an unload, error texts that would
show the server's folders, and overload far past the queue. Each test failed before its
fix (issue 20)."""

from __future__ import annotations

import asyncio
import math
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from service_helpers import ADMIN, ServerProcess, rss_bytes, serve

from app.admission import Admission
from app.metrics import Metrics
from app.middleware import AdmissionMiddleware
from registry import RoutingTable, check_weights

# ---- route weights ----


@pytest.mark.parametrize(
    "raw",
    [
        b'{"weights": {"1": NaN}}',
        b'{"weights": {"1": Infinity}}',
        b'{"weights": {"1": 100, "2": -Infinity}}',
        b'{"weights": {"1": 1e308, "2": 1e308}}',  # their sum overflowed to inf
        b'{"weights": {"1": "100"}}',
        b'{"weights": {"1": true}}',
    ],
)
def test_non_finite_huge_or_non_numeric_weights_are_refused(
    client: TestClient, raw: bytes,
) -> None:
    r = client.put("/admin/routes/tiny", content=raw,
                   headers={**ADMIN, "Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert client.get("/admin/routes", headers=ADMIN).json()["tiny"] == {"1": 100.0, "2": 0.0}
    assert client.get("/readyz").status_code == 200
    r = client.post("/predict", json={"text": "good", "model": "tiny"})
    assert r.status_code == 200 and r.json()["version"] == "1"


def test_a_route_may_not_name_a_version_that_does_not_exist(client: TestClient) -> None:
    r = client.put("/admin/routes/tiny", json={"weights": {"1": 100, "99": 0}}, headers=ADMIN)
    assert r.status_code == 409 and "tiny/99 is not in the registry" in r.text
    assert "99" not in client.get("/admin/routes", headers=ADMIN).json()["tiny"]
    assert 'version="99"' not in client.get("/metrics").text


def test_weights_a_route_no_longer_names_leave_the_metrics(client: TestClient) -> None:
    assert 'textclf_route_weight{model="tiny",version="2"} 0.0' in client.get("/metrics").text
    r = client.put("/admin/routes/tiny", json={"weights": {"1": 100}}, headers=ADMIN)
    assert r.status_code == 200
    metrics = client.get("/metrics").text
    assert 'textclf_route_weight{model="tiny",version="1"} 100.0' in metrics
    assert 'textclf_route_weight{model="tiny",version="2"}' not in metrics


@pytest.mark.parametrize("weight", [math.nan, math.inf, -math.inf, 1e300])
def test_routes_file_with_non_finite_weights_is_refused(weight: float) -> None:
    with pytest.raises(ValueError):
        check_weights({"1": weight})
    with pytest.raises(ValueError):
        RoutingTable(routes={"m": {"1": 1.0, "2": weight}})


# ---- a pinned request racing an unload ----


def test_pinned_request_for_a_version_being_unloaded_is_503_with_retry_after(
    client: TestClient,
) -> None:
    """Version 2 (weight 0) holds a request inside its model while it is unloaded: a
    pinned request in that window is told to come back (503), not that it is gone."""
    manager = client.app.state.manager
    ref = next(r for r in manager.loaded() if str(r) == "tiny/2")
    batcher = manager.get(ref).batcher
    entered, release = threading.Event(), threading.Event()
    real = batcher._predict

    def held(texts: list[str]):  # type: ignore[no-untyped-def]
        entered.set()
        release.wait(timeout=60)
        return real(texts)

    batcher._predict = held
    results: dict[str, int] = {}
    first = threading.Thread(target=lambda: results.update(first=client.post(
        "/predict", json={"text": "good", "model": "tiny", "version": "2"}).status_code))
    first.start()
    assert entered.wait(timeout=60)
    unload = threading.Thread(target=lambda: results.update(unload=client.delete(
        "/admin/models/tiny/2", headers=ADMIN).status_code))
    unload.start()
    try:
        deadline = time.monotonic() + 60
        while not manager.changing(ref) and time.monotonic() < deadline:
            time.sleep(0.01)
        r = client.post("/predict", json={"text": "good", "model": "tiny", "version": "2"})
        assert r.status_code == 503, r.text
        assert r.headers["Retry-After"] == "1" and "being loaded or unloaded" in r.text
    finally:
        release.set()
        first.join(timeout=60)
        unload.join(timeout=60)
    assert results == {"first": 200, "unload": 200}
    r = client.post("/predict", json={"text": "good", "model": "tiny", "version": "2"})
    assert r.status_code == 404  # unloaded now: that answer is final


# ---- what GET /models shows ----


def test_load_errors_do_not_show_the_registry_path(make_registry: Callable[..., Path]) -> None:
    root = make_registry({"tiny": {"1": 100, "2": 0}})
    (root / "tiny" / "2" / "model.onnx").write_bytes(b"not an onnx model")
    with serve(root) as c:
        versions = {m["name"]: m["versions"] for m in c.get("/models").json()["models"]}
        error = versions["tiny"][1]["load_error"]
        assert "sha256" in error and "tiny/2" in error, error
        r = c.post("/admin/models/tiny/2/load", headers=ADMIN)
        assert r.status_code == 422
        for shown in (error, r.text):
            assert str(root) not in shown and str(root.resolve()) not in shown
            assert str(root.parent) not in shown


# ---- admission under overload ----


def test_admission_refuses_past_the_limit_before_reading_the_body() -> None:
    """A request that finds `limit` in flight is answered 503 without its body being
    read (its `receive` is never called); once one finishes, the next is admitted."""
    release = asyncio.Event()
    admitted: list[str] = []

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        admitted.append(scope["path"])
        await receive()
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def call(middleware: AdmissionMiddleware, path: str) -> tuple[list[dict], int]:
        sent: list[dict] = []
        reads = 0

        async def receive():  # type: ignore[no-untyped-def]
            nonlocal reads
            reads += 1
            return {"type": "http.request", "body": b"{}", "more_body": False}

        async def send(message):  # type: ignore[no-untyped-def]
            sent.append(message)

        await middleware({"type": "http", "path": path, "method": "POST", "headers": []},
                         receive, send)
        return sent, reads

    async def scenario() -> None:
        middleware = AdmissionMiddleware(app, Admission(1, Metrics()))
        held = asyncio.create_task(call(middleware, "/predict"))
        while not admitted:
            await asyncio.sleep(0)
        refused, reads = await call(middleware, "/predict")
        assert refused[0]["status"] == 503 and reads == 0
        headers = dict(refused[0]["headers"])
        assert headers[b"retry-after"] == b"1" and b"connection" not in headers
        assert b'"overloaded"' in refused[1]["body"]
        other = asyncio.create_task(call(middleware, "/healthz"))  # not /predict: not counted
        release.set()
        assert (await other)[0][0]["status"] == 200
        assert (await held)[0][0]["status"] == 200
        assert middleware.admission.in_flight == 0
        assert (await call(middleware, "/predict"))[0][0]["status"] == 200

    asyncio.run(scenario())


# ---- the HTTP layer of a real server: head size and read time ----


@pytest.fixture(scope="module")
def guarded_server(base_registry: Path, tmp_path_factory: pytest.TempPathFactory,
                   ) -> Iterator[ServerProcess]:
    import shutil

    root = tmp_path_factory.mktemp("guarded") / "models"
    shutil.copytree(base_registry, root)
    RoutingTable(routes={"tiny": {"1": 100}}).write(root)
    env = {"APP_READ_TIMEOUT_S": "1", "APP_MAX_HEADER_BYTES": "16384"}
    with ServerProcess(root, root.parent / "server.log", **env) as server:
        yield server


def read_answer(sock: socket.socket, timeout_s: float = 60) -> bytes:
    """Everything the server sends until it closes the connection (or the time-out)."""
    sock.settimeout(timeout_s)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return data


def test_header_over_the_limit_is_431_and_the_connection_closes(
    guarded_server: ServerProcess,
) -> None:
    for size in (20_000, 200_000):  # within one read of the server, and over many
        with socket.create_connection(("127.0.0.1", guarded_server.port)) as sock:
            head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * size + b"\r\n\r\n"
            try:
                sock.sendall(head)
            except OSError:  # the server may close before it has taken everything
                pass
            answer = read_answer(sock)
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
        assert b'"header_too_large"' in answer
    # A head within the limit is served.
    r = httpx.get(f"{guarded_server.base}/healthz", headers={"X-Ok": "a" * 8000}, timeout=60)
    assert r.status_code == 200


def test_huge_headers_do_not_take_the_servers_memory(guarded_server: ServerProcess) -> None:
    """Eight clients at once each try to send a 40 MB header: the server stops reading
    each one past the limit, so its memory barely moves (it took 600 MB before)."""
    before = rss_bytes(guarded_server.pid)
    chunk = b"a" * (1 << 20)

    def attack() -> None:
        with socket.create_connection(("127.0.0.1", guarded_server.port)) as sock:
            try:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
                for _ in range(40):
                    sock.sendall(chunk)
            except OSError:
                pass  # refused and closed, as it should be
            read_answer(sock)

    threads = [threading.Thread(target=attack) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    after = rss_bytes(guarded_server.pid)
    assert after - before < 64 * 2**20, (before, after)
    assert httpx.get(f"{guarded_server.base}/readyz", timeout=60).status_code == 200


@pytest.mark.parametrize(
    "sent",
    [
        b"",  # connected, sent nothing
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Ty",  # half a head
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n{\"text\": ",  # the head and part of the body
    ],
)
def test_request_that_never_arrives_whole_is_timed_out(
    guarded_server: ServerProcess, sent: bytes,
) -> None:
    """APP_READ_TIMEOUT_S=1 here: the server answers 408 and closes, well before the
    test's own generous time-out (before the fix it waited for ever)."""
    socks = [socket.create_connection(("127.0.0.1", guarded_server.port)) for _ in range(50)]
    try:
        for sock in socks:
            sock.sendall(sent)
        answers = [read_answer(sock, timeout_s=60) for sock in socks]
    finally:
        for sock in socks:
            sock.close()
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        assert b'"request_timeout"' in answer
    r = httpx.post(f"{guarded_server.base}/predict", json={"text": "good"}, timeout=60)
    assert r.status_code == 200
    assert "Traceback" not in guarded_server.log()


def test_a_connection_refused_for_overload_is_not_read_again_for_a_while(
    base_registry: Path, tmp_path: Path,
) -> None:
    """The refusal ping-pong: a client that re-sends at once on the connection it was just
    refused on waits in the socket for APP_REFUSED_PAUSE_S, while other connections are
    served; then its request is read and answered."""
    import shutil

    root = tmp_path / "models"
    shutil.copytree(base_registry, root)
    RoutingTable(routes={"tiny": {"1": 100}}).write(root)
    env = {"APP_MAX_IN_FLIGHT": "1", "APP_REFUSED_PAUSE_S": "8", "APP_READ_TIMEOUT_S": "120"}
    body = b'{"text": "bad"}'
    predict = (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n" % len(body))
    with ServerProcess(root, tmp_path / "server.log", **env) as server, \
            socket.create_connection(("127.0.0.1", server.port)) as holder, \
            socket.create_connection(("127.0.0.1", server.port)) as refused:
        holder.sendall(predict + body[:8])  # admitted, its body still on the way
        deadline = time.monotonic() + 60
        while True:  # until the holder is in flight: the next /predict is refused
            refused.sendall(predict + body)
            refused.settimeout(60)
            answer = refused.recv(65536)
            if answer.startswith(b"HTTP/1.1 503 "):
                break
            assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
            assert time.monotonic() < deadline, "the holder was never admitted"
        assert b"retry-after: 1" in answer.lower()
        refused.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")  # re-sent at once
        time.sleep(0.5)  # it has arrived: without the pause it would be answered first
        assert httpx.get(f"{server.base}/healthz", timeout=60).status_code == 200
        refused.setblocking(False)
        with pytest.raises(BlockingIOError):
            refused.recv(65536)  # not read yet, so not answered
        refused.settimeout(120)
        assert refused.recv(65536).startswith(b"HTTP/1.1 200 ")  # read after the pause
        holder.sendall(body[8:])
        holder.settimeout(120)
        assert holder.recv(65536).startswith(b"HTTP/1.1 200 ")
    assert "Traceback" not in server.log()
