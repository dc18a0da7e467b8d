"""The Open Inference Protocol (V2) over raw HTTP: every refusal in the protocol's shape
and status, one inference path with /predict (same answers, same routing, same
stickiness, same metrics), and overload answered 503 on a V2 infer like on /predict."""

from __future__ import annotations

import asyncio
import gzip
import json
import shutil
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from service_helpers import ADMIN, ServerProcess, serve

from app.admission import Admission, is_inference_path
from app.metrics import Metrics
from app.middleware import AdmissionMiddleware
from registry import RoutingTable

INFER = "/v2/models/tiny/infer"


def tensor(data: list, shape: list[int] | None = None, **fields: object) -> dict:
    spec = {"name": "text", "datatype": "BYTES", "shape": shape or [len(data)], "data": data}
    return {**spec, **fields}


def infer_body(*texts: str, **fields: object) -> dict:
    return {"inputs": [tensor(list(texts))], **fields}


def assert_oip_error(r: object, status: int, *words: str) -> str:
    """The protocol's error object: {"error": "<message>"}, nothing else."""
    assert r.status_code == status, r.text
    body = r.json()
    assert list(body) == ["error"] and isinstance(body["error"], str), body
    for word in words:
        assert word in body["error"], body
    return body["error"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"inputs": [tensor([1.5], datatype="FP32")]}, ["datatype 'FP32'", "BYTES"]),
        ({"inputs": [tensor(["a", "b"], shape=[3])]}, ["shape [3]", "2 element"]),
        ({"inputs": [tensor(["a", "b"], shape=[1, 2])]}, ["shape [1, 2]"]),
        ({"inputs": [tensor([["a", "b"]], shape=[2, 1])]}, ["data[0] holds 2"]),
        ({"inputs": [tensor(["a", 7])]}, ["data[1] is not a string"]),
        ({"inputs": []}, ["missing input 'text'"]),
        ({"inputs": [tensor(["a"], name="sentence")]}, ["unknown input 'sentence'"]),
        ({"inputs": [tensor(["a"]), tensor(["b"])]}, ["given 2 times"]),
        ({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1]}]}, ["no 'data'"]),
        (infer_body("a", outputs=[{"name": "logits"}]), ["unknown output 'logits'"]),
        (infer_body("a", outputs=[{"name": "label", "parameters": {"classification": 2}}]),
         ["classification"]),
        ({"inputs": [tensor([], shape=[0])]}, ["no text"]),
        ({"inputs": [tensor(["  "])]}, ["empty or only whitespace"]),
        ({"inputs": [tensor(["a"] * 33)]}, ["33 texts", "limit is 32"]),
        ({"inputs": [tensor(["a"])], "parameters": {"binary_data_output": "yes"}},
         ["binary_data_output"]),
        ({"texts": ["a"]}, ["inputs"]),  # a /predict body
    ],
    ids=["datatype", "shape-vs-data", "shape-rank", "nested-row", "number", "missing-input",
         "unknown-input", "input-twice", "no-data", "unknown-output", "classification",
         "no-text", "blank-text", "too-many-texts", "parameter-type", "predict-body"],
)
def test_bad_tensors_are_400_with_the_protocols_error(
    client: TestClient, body: dict, words: list[str],
) -> None:
    assert_oip_error(client.post(INFER, json=body), 400, *words)


def test_bodies_that_are_not_json_or_whose_binary_part_is_wrong_are_400(
    client: TestClient,
) -> None:
    assert_oip_error(client.post(INFER, content=b"{"), 400, "not valid JSON")
    gzipped = client.post(INFER, content=gzip.compress(json.dumps(infer_body("a")).encode()),
                          headers={"Content-Encoding": "gzip"})
    assert_oip_error(gzipped, 400, "Content-Encoding 'gzip' is not supported")
    head = json.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1],
                                   "parameters": {"binary_data_size": 9}}]}).encode()
    element = struct.pack("<I", 5) + b"hello"  # 9 bytes: one BYTES element
    ok = client.post(INFER, content=head + element,
                     headers={"Inference-Header-Content-Length": str(len(head))})
    assert ok.status_code == 200, ok.text
    assert ok.json()["outputs"][0]["data"] == [client.post(
        INFER, json=infer_body("hello")).json()["outputs"][0]["data"][0]]
    for length, extra, words in [
        (str(len(head) + 100), element, ["Inference-Header-Content-Length"]),
        ("ten", element, ["Inference-Header-Content-Length"]),
        (str(len(head)), element[:-1], ["announces 9 bytes", "8 bytes"]),
        (str(len(head)), struct.pack("<I", 50) + b"hello", ["ends inside element 0"]),
        (str(len(head)), struct.pack("<I", 5) + b"\xff" * 5, ["not UTF-8"]),
    ]:
        r = client.post(INFER, content=head + extra,
                        headers={"Inference-Header-Content-Length": length})
        assert_oip_error(r, 400, *words)


def test_unknown_models_and_versions_are_404(client: TestClient) -> None:
    body = infer_body("good")
    assert_oip_error(client.post("/v2/models/nope/infer", json=body), 404, "unknown model")
    assert_oip_error(client.post("/v2/models/tiny/versions/9/infer", json=body), 404,
                     "unknown model version tiny/9")
    assert_oip_error(client.get("/v2/models/nope"), 404, "unknown model 'nope'")
    assert_oip_error(client.get("/v2/models/tiny/versions/9"), 404, "tiny/9")
    assert_oip_error(client.get("/v2/models/nope/ready"), 404, "nope")
    assert_oip_error(client.get("/v2/models/tiny/versions/9/ready"), 404, "tiny/9")
    assert_oip_error(client.get("/v2/nothing/here"), 404)
    assert_oip_error(client.get(INFER), 405)  # the framework's errors too
    assert_oip_error(client.post("/v2/models/bad%20name/infer", json=body), 400, "name")
    # Unloaded: gone for pinned requests, and the version is no longer ready.
    assert client.delete("/admin/models/tiny/2", headers=ADMIN).status_code == 200
    assert_oip_error(client.post("/v2/models/tiny/versions/2/infer", json=body), 404,
                     "exists but is not loaded")
    assert_oip_error(client.get("/v2/models/tiny/versions/2/ready"), 400, "not loaded")
    assert client.get("/v2/models/tiny/ready").status_code == 200  # version 1 serves


def test_readiness_mirrors_readyz(make_registry: Callable[..., Path]) -> None:
    with serve(make_registry({"tiny": {"1": 100}})) as c:  # other/1: on disk, not loaded
        assert c.get("/v2/health/ready").status_code == 200
        assert_oip_error(c.get("/v2/models/other/ready"), 400, "no loaded version")
        assert_oip_error(c.get("/v2/models/other"), 404, "no loaded version")
        c.app.state.draining = True
        assert_oip_error(c.get("/v2/health/ready"), 400, "shutting down")
        assert c.get("/v2/health/live").status_code == 200
    root = make_registry({"tiny": {"1": 100}, "other": {"1": 100}})
    (root / "other" / "1" / "model.onnx").write_bytes(b"corrupt")  # routed, never loads
    with serve(root) as c:
        assert c.get("/readyz").status_code == 503
        assert_oip_error(c.get("/v2/health/ready"), 400, "other")
        assert_oip_error(c.get("/v2/models/other/ready"), 400, "no loaded version")
        assert_oip_error(c.post("/v2/models/other/infer", json=infer_body("good")), 503,
                         "no loaded version")
        assert c.get("/v2/models/tiny/ready").status_code == 200


def test_the_same_text_gets_the_same_answer_through_both_apis(client: TestClient) -> None:
    texts = ["a wonderful film", "dull and boring", "an ok film"]
    for version in ("1", "2"):
        predicted = client.post("/predict", json={"texts": texts, "model": "tiny",
                                                  "version": version}).json()
        answer = client.post(f"/v2/models/tiny/versions/{version}/infer",
                             json=infer_body(*texts)).json()
        data = {out["name"]: out["data"] for out in answer["outputs"]}
        assert answer["model_version"] == predicted["version"] == version
        assert data["label"] == [p["label"] for p in predicted["predictions"]]
        assert data["probabilities"] == [v for p in predicted["predictions"]
                                         for v in p["scores"].values()]
        assert data["score"] == [p["score"] for p in predicted["predictions"]]


def test_routing_keys_stick_to_one_version_and_agree_with_predict(
    make_registry: Callable[..., Path],
) -> None:
    with serve(make_registry({"tiny": {"1": 50, "2": 50}})) as c:
        chosen = {}
        for i in range(16):
            key = {"X-Routing-Key": f"user-{i}"}
            versions = {c.post(INFER, json=infer_body("good"), headers=key).json()[
                "model_version"] for _ in range(3)}
            assert len(versions) == 1, (key, versions)
            chosen[i] = versions.pop()
            predicted = c.post("/predict", json={"text": "good"}, headers=key).json()
            assert predicted["version"] == chosen[i]
        assert set(chosen.values()) == {"1", "2"}  # both halves of the split are reached
        metrics = c.get("/metrics").text
        assert 'textclf_ab_assignments_total{method="hash",model="tiny",version="1"}' in metrics


def test_v2_answers_are_counted_in_the_request_metrics(client: TestClient) -> None:
    def count(status: str, version: str = "1") -> float:
        line = f'textclf_requests_total{{model="tiny",status="{status}",version="{version}"}}'
        found = [x for x in client.get("/metrics").text.splitlines() if x.startswith(line)]
        return float(found[0].split()[-1]) if found else 0.0

    before = count("200")
    assert client.post(INFER, json=infer_body("good")).status_code == 200
    assert client.post("/predict", json={"text": "good", "model": "tiny"}).status_code == 200
    assert count("200") == before + 2
    refused = 'textclf_requests_total{model="",status="400",version=""}'
    assert client.post(INFER, json={"inputs": []}).status_code == 400
    assert refused in client.get("/metrics").text


def test_body_over_the_limit_is_413_in_the_protocols_shape(
    make_registry: Callable[..., Path],
) -> None:
    with serve(make_registry({"tiny": {"1": 100}}), max_body_bytes=1024) as c:
        r = c.post(INFER, json=infer_body("x" * 2000))
        assert_oip_error(r, 413, "larger than 1024 bytes")


def test_inference_paths_are_predict_and_v2_infer() -> None:
    for path in ("/predict", INFER, "/v2/models/tiny/versions/2/infer"):
        assert is_inference_path(path), path
    for path in ("/v2/models/tiny", "/v2/models/tiny/ready", "/v2/models/infer",
                 "/predicts", "/v2/models/a/b/infer", "/healthz"):
        assert not is_inference_path(path), path


def test_the_admission_middleware_refuses_a_v2_infer_in_the_protocols_shape() -> None:
    """Past the limit, a V2 infer gets 503 + Retry-After, its body unread, as /predict
    does; and it shares one count with /predict."""
    release = asyncio.Event()

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def call(middleware: AdmissionMiddleware, path: str) -> list[dict]:
        sent: list[dict] = []

        async def receive():  # type: ignore[no-untyped-def]
            raise AssertionError("a refused request's body is not read")

        async def send(message):  # type: ignore[no-untyped-def]
            sent.append(message)

        await middleware({"type": "http", "path": path, "method": "POST", "headers": []},
                         receive, send)
        return sent

    async def scenario() -> None:
        middleware = AdmissionMiddleware(app, Admission(1, Metrics()))
        held = asyncio.create_task(call(middleware, "/predict"))
        while middleware.admission.in_flight == 0:
            await asyncio.sleep(0)
        refused = await call(middleware, "/v2/models/tiny/versions/1/infer")
        assert refused[0]["status"] == 503
        assert dict(refused[0]["headers"])[b"retry-after"] == b"1"
        assert list(json.loads(refused[1]["body"])) == ["error"]
        release.set()
        assert (await held)[0]["status"] == 200 and middleware.admission.in_flight == 0

    asyncio.run(scenario())


def http_post(path: str, body: bytes) -> bytes:
    return (b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % (path.encode(), len(body))) + body


def test_overload_on_a_v2_infer_is_503_from_the_protocol(
    base_registry: Path, tmp_path: Path,
) -> None:
    """APP_MAX_IN_FLIGHT=1 and one request in flight (its body still on the way): a V2
    infer is refused 503 by the HTTP protocol in the V2 shape, a /predict in its own."""
    root = tmp_path / "models"
    shutil.copytree(base_registry, root)
    RoutingTable(routes={"tiny": {"1": 100}}).write(root)
    env = {"APP_MAX_IN_FLIGHT": "1", "APP_REFUSED_PAUSE_S": "0", "APP_READ_TIMEOUT_S": "120"}
    v2 = json.dumps(infer_body("bad")).encode()
    with ServerProcess(root, tmp_path / "server.log", **env) as server, \
            socket.create_connection(("127.0.0.1", server.port)) as holder, \
            socket.create_connection(("127.0.0.1", server.port)) as other:
        holder.sendall(http_post(INFER, v2)[:-8])  # admitted, its body still on the way
        other.settimeout(60)
        deadline = time.monotonic() + 60
        while True:  # until the holder is in flight: the next infer is refused
            other.sendall(http_post(INFER, v2))
            answer = other.recv(65536)
            if answer.startswith(b"HTTP/1.1 503 "):
                break
            assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
            assert time.monotonic() < deadline, "the holder was never admitted"
        head, _, body = answer.partition(b"\r\n\r\n")
        assert b"retry-after: 1" in head.lower()
        assert list(json.loads(body)) == ["error"] and b"overloaded" in body
        other.sendall(http_post("/predict", b'{"text": "good"}'))  # the same count
        answer = other.recv(65536)
        assert answer.startswith(b"HTTP/1.1 503 ")
        assert json.loads(answer.partition(b"\r\n\r\n")[2])["error"]["type"] == "overloaded"
        holder.sendall(v2[-8:])
        holder.settimeout(120)
        assert holder.recv(65536).startswith(b"HTTP/1.1 200 ")
        metrics = httpx_get(server, "/metrics")
        assert 'textclf_requests_total{model="",status="503",version=""} 2.0' in metrics
    assert "Traceback" not in server.log()


def httpx_get(server: ServerProcess, path: str) -> str:
    import httpx

    return httpx.get(f"{server.base}{path}", timeout=60).text
