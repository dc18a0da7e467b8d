"""The Open Inference Protocol (V2) as tritonclient users see it: NVIDIA's own HTTP client
(`tritonclient.http.InferenceServerClient`) against a real `python -m app` process, with
JSON tensors and with its default binary tensor data."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from service_helpers import REPO, ServerProcess

from registry import RoutingTable

tritonhttp = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402

TEXTS = ["a wonderful, moving film", "dull and far too long", "fine"]


@pytest.fixture(scope="module")
def server(task_registry: Path, tmp_path_factory: pytest.TempPathFactory,
           ) -> Iterator[ServerProcess]:
    """tiny/1 at 100 % (tiny/2 loaded at weight 0), other/1 at 100 % (three labels), and
    ner/1 (a token classifier) and qa/1 (a question answerer) at 100 %."""
    root = tmp_path_factory.mktemp("oip") / "models"
    shutil.copytree(task_registry, root)
    RoutingTable(routes={"tiny": {"1": 100, "2": 0}, "other": {"1": 100}, "ner": {"1": 100},
                         "qa": {"1": 100}}).write(root)
    with ServerProcess(root, root.parent / "server.log") as s:
        yield s
    assert "Traceback" not in s.log(), s.log()


@pytest.fixture(scope="module")
def triton(server: ServerProcess) -> Iterator[object]:
    client = tritonhttp.InferenceServerClient(url=f"127.0.0.1:{server.port}",
                                              network_timeout=60.0)
    yield client
    client.close()


def text_input(texts: list[str], binary: bool, shape: list[int] | None = None,
               name: str = "text") -> object:
    data = np.array(texts, dtype=object).reshape(shape or [len(texts)])
    tensor = tritonhttp.InferInput(name, list(data.shape), "BYTES")
    tensor.set_data_from_numpy(data, binary_data=binary)
    return tensor


def json_outputs(*names: str) -> list[object]:
    return [tritonhttp.InferRequestedOutput(name, binary_data=False) for name in names]


def predict(server: ServerProcess, texts: list[str], version: str | None = None) -> dict:
    body: dict = {"texts": texts, "model": "tiny"}
    if version is not None:
        body["version"] = version
    r = httpx.post(f"{server.base}/predict", json=body, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def test_server_health_and_metadata(triton: object, server: ServerProcess) -> None:
    assert triton.is_server_live() and triton.is_server_ready()
    assert triton.get_server_metadata() == {
        "name": "textclf", "version": "0.1.0", "extensions": ["binary_tensor_data"]}
    live = httpx.get(f"{server.base}/v2/health/live", timeout=60)
    assert live.status_code == 200 and live.content == b""  # the status is the answer


def test_model_metadata_describes_the_tensors(triton: object) -> None:
    meta = triton.get_model_metadata("tiny")
    assert meta == {
        "name": "tiny", "versions": ["1", "2"], "platform": "onnxruntime_onnx",
        "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}],
        "outputs": [{"name": "label", "datatype": "BYTES", "shape": [-1]},
                    {"name": "score", "datatype": "FP32", "shape": [-1]},
                    {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]},
                    {"name": "labels", "datatype": "BOOL", "shape": [-1, 2]},
                    {"name": "prediction_id", "datatype": "BYTES", "shape": [-1]}],
        "labels": ["negative", "positive"],
    }
    assert triton.get_model_metadata("tiny", "2") == meta
    other = triton.get_model_metadata("other", "1")
    assert other["outputs"][2]["shape"] == [-1, 3]
    assert other["labels"] == ["neg", "neutral", "pos"]
    with pytest.raises(InferenceServerException) as missing:
        triton.get_model_metadata("tiny", "9")
    assert missing.value.status() == "404" and "tiny/9" in missing.value.message()


def test_model_and_version_readiness(triton: object) -> None:
    assert triton.is_model_ready("tiny") and triton.is_model_ready("other")
    assert triton.is_model_ready("tiny", "2")  # loaded, at weight 0: pinned requests served
    assert not triton.is_model_ready("nope")
    assert not triton.is_model_ready("tiny", "9")


def test_infer_with_json_tensors_matches_predict(triton: object, server: ServerProcess) -> None:
    result = triton.infer("tiny", [text_input(TEXTS, binary=False)], request_id="req-7",
                          outputs=json_outputs("label", "score", "probabilities"))
    answer = result.get_response()
    assert answer["model_name"] == "tiny" and answer["model_version"] == "1"
    assert answer["id"] == "req-7"
    assert all("data" in out and "parameters" not in out for out in answer["outputs"])
    expected = predict(server, TEXTS)["predictions"]
    data = {out["name"]: out["data"] for out in answer["outputs"]}
    # The same floats as /predict's JSON: one inference path, nothing rounded on the way.
    assert data["label"] == [p["label"] for p in expected]
    assert data["score"] == [p["score"] for p in expected]
    assert data["probabilities"] == [v for p in expected for v in p["scores"].values()]
    assert result.as_numpy("probabilities").shape == (3, 2)
    assert result.as_numpy("label").tolist() == [p["label"] for p in expected]  # JSON: str


def test_infer_with_tritonclients_binary_defaults(triton: object, server: ServerProcess) -> None:
    """Binary input, and no outputs named: tritonclient asks for every output as binary
    data (`binary_data_output`), which the answer carries after its JSON."""
    result = triton.infer("tiny", [text_input(TEXTS, binary=True)])
    answer = result.get_response()
    assert {out["name"] for out in answer["outputs"]} == {"label", "score", "probabilities",
                                                           "labels", "prediction_id"}
    assert all("binary_data_size" in out["parameters"] for out in answer["outputs"])
    expected = predict(server, TEXTS)["predictions"]
    assert result.as_numpy("label").tolist() == [p["label"].encode() for p in expected]
    probabilities = result.as_numpy("probabilities")
    assert probabilities.dtype == np.float32 and probabilities.shape == (3, 2)
    want = np.array([list(p["scores"].values()) for p in expected], dtype=np.float32)
    np.testing.assert_array_equal(probabilities, want)
    np.testing.assert_array_equal(result.as_numpy("score"), probabilities.max(axis=1))
    chosen = result.as_numpy("labels")  # single-label: the most probable label alone
    assert chosen.dtype == np.bool_ and chosen.shape == (3, 2)
    np.testing.assert_array_equal(chosen, probabilities == probabilities.max(axis=1)[:, None])


def test_prediction_ids_reach_tritonclient_and_feedback_takes_them(
    triton: object, server: ServerProcess,
) -> None:
    binary = triton.infer("tiny", [text_input(TEXTS, binary=True)])
    ids = [i.decode() for i in binary.as_numpy("prediction_id")]
    labels = [label.decode() for label in binary.as_numpy("label")]
    assert binary.as_numpy("prediction_id").shape == (3,) and len(set(ids)) == 3
    as_json = triton.infer("tiny", [text_input(TEXTS, binary=False)],
                           outputs=json_outputs("label", "prediction_id"))
    assert as_json.as_numpy("label").tolist() == labels
    ids.append(as_json.as_numpy("prediction_id").tolist()[0])  # str: JSON
    assert ids[3] not in ids[:3]  # another answer, another id
    for prediction_id, label in zip(ids, labels + labels[:1], strict=True):
        r = httpx.post(f"{server.base}/feedback", json={"prediction_id": prediction_id,
                                                         "label": label}, timeout=60)
        assert r.status_code == 200, r.text
        assert r.json()["version"] == "1" and r.json()["correct"] is True
    again = httpx.post(f"{server.base}/feedback", json={"prediction_id": ids[0],
                                                         "label": labels[0]}, timeout=60)
    assert again.status_code == 409
    restricted = triton.infer("tiny", [text_input(TEXTS, binary=True)],
                              outputs=json_outputs("label"))
    assert restricted.as_numpy("prediction_id") is None  # not asked for: not sent


def test_entities_and_answers_through_tritonclient(triton: object, server: ServerProcess,
                                                   ) -> None:
    texts = ["anna bell was in paris", "carl saw new york and oslo"]
    result = triton.infer("ner", [text_input(texts, binary=True)])
    assert triton.get_model_metadata("ner")["outputs"][0]["name"] == "entities"
    entities = [json.loads(e) for e in result.as_numpy("entities")]
    r = httpx.post(f"{server.base}/predict", json={"texts": texts, "model": "ner"},
                   timeout=60)
    assert entities == [p["entities"] for p in r.json()["predictions"]]
    assert result.as_numpy("prediction_id") is None  # entities: no feedback to give
    contexts = ["the film was really wonderful", "it is a story of the plot"]
    answers = triton.infer("qa", [text_input(["what was good ?"] * 2, binary=True,
                                             name="question"),
                                  text_input(contexts, binary=False, name="context")])
    r = httpx.post(f"{server.base}/predict", timeout=60, json={"model": "qa", "inputs": [
        {"question": "what was good ?", "context": c} for c in contexts]})
    expected = [p["answer"] for p in r.json()["predictions"]]
    assert [a.decode() for a in answers.as_numpy("answer")] == [a["text"] for a in expected]
    starts = answers.as_numpy("start")
    assert starts.dtype == np.int64 and starts.tolist() == [a["start"] for a in expected]
    assert answers.as_numpy("end").tolist() == [a["end"] for a in expected]
    np.testing.assert_allclose(answers.as_numpy("score"), [a["score"] for a in expected],
                               rtol=1e-6)


def test_infer_pinned_to_a_version(triton: object, server: ServerProcess) -> None:
    result = triton.infer("tiny", [text_input(TEXTS, binary=True)], model_version="2",
                          outputs=json_outputs("probabilities"))
    assert result.get_response()["model_version"] == "2"
    assert [out["name"] for out in result.get_response()["outputs"]] == ["probabilities"]
    assert result.as_numpy("label") is None  # not asked for
    expected = predict(server, TEXTS, version="2")["predictions"]
    assert result.get_output("probabilities")["data"] == [
        v for p in expected for v in p["scores"].values()]
    routed = triton.infer("tiny", [text_input(TEXTS, binary=True)],
                          outputs=json_outputs("probabilities"))
    assert routed.get_output("probabilities")["data"] != result.get_output(
        "probabilities")["data"]  # version 1 answered this one


def test_a_batch_of_shape_n_by_1_answers_in_that_shape(triton: object) -> None:
    result = triton.infer("other", [text_input(TEXTS, binary=False, shape=[3, 1])],
                          outputs=[tritonhttp.InferRequestedOutput("label"),
                                   *json_outputs("probabilities")])
    assert result.as_numpy("label").shape == (3, 1)  # binary, as that output asked
    assert result.as_numpy("probabilities").shape == (3, 3)


def test_errors_reach_the_client_with_their_status(triton: object) -> None:
    with pytest.raises(InferenceServerException) as unknown:
        triton.infer("nope", [text_input(["x"], binary=True)])
    assert unknown.value.status() == "404" and "unknown model 'nope'" in unknown.value.message()
    numbers = tritonhttp.InferInput("text", [2], "FP32")
    numbers.set_data_from_numpy(np.array([1.0, 2.0], dtype=np.float32), binary_data=False)
    with pytest.raises(InferenceServerException) as wrong_type:
        triton.infer("tiny", [numbers])
    assert wrong_type.value.status() == "400"
    with pytest.raises(InferenceServerException) as wrong_output:
        triton.infer("tiny", [text_input(["x"], binary=True)], outputs=json_outputs("logits"))
    assert wrong_output.value.status() == "400" and "'logits'" in wrong_output.value.message()


def _docs_section() -> str:
    text = (REPO / "docs" / "serving.md").read_text()
    start = text.index("## Open Inference Protocol (V2)")
    return text[start:text.index("\n## ", start + 1)]


def test_the_docs_examples_work(server: ServerProcess, capsys: pytest.CaptureFixture) -> None:
    """docs/serving.md's tritonclient and curl examples, against this server and model."""
    section = _docs_section()
    example = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    example = example.replace("localhost:8000", f"127.0.0.1:{server.port}")
    exec(example.replace('"sst2-sentiment"', '"tiny"'), {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("[b'") and printed[-1] == "1"  # labels ... version
    curl = re.search(r"```bash\n(.*?)```", section, flags=re.S).group(1)
    body = json.loads(re.search(r"-d '(.*?)'", curl, flags=re.S).group(1))
    r = httpx.post(f"{server.base}/v2/models/tiny/infer", json=body, timeout=60)
    documented = json.loads(re.search(r"```json\n(.*?)```", section, flags=re.S).group(1))
    assert r.status_code == 200, r.text
    answer = r.json()
    assert set(answer) == set(documented) and answer["id"] == documented["id"]
    for got, shown in zip(answer["outputs"], documented["outputs"], strict=True):
        assert {k: v for k, v in got.items() if k != "data"} == {
            k: v for k, v in shown.items() if k != "data"}
