"""V2 infer by task over raw HTTP: a token classifier's `entities`, a question
answerer's `question` and `context` in and spans out (the same answers as /predict, the
same refusals in the protocol's shape), each task's model metadata, and a classifier's
signed `prediction_id` output that POST /feedback accepts."""

from __future__ import annotations

import json
import random
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from service_helpers import serve
from test_service_oip_http import assert_oip_error, infer_body, tensor
from toy_qa import QUESTION, toy_paragraph

from registry import RoutingTable

NER_TEXTS = ["anna bell was in paris", "the film was good", "carl saw new york and oslo"]
MAX_CONTEXT = 400  # characters: the long context below fits, "x" * 401 does not


@pytest.fixture(scope="module")
def tasks(task_registry: Path, tmp_path_factory: pytest.TempPathFactory,
          ) -> Iterator[TestClient]:
    """tiny/1, ner/1 and qa/1, each routed at 100 %."""
    root = tmp_path_factory.mktemp("oip-tasks") / "models"
    shutil.copytree(task_registry, root)
    RoutingTable(routes={"tiny": {"1": 100}, "ner": {"1": 100}, "qa": {"1": 100}}).write(root)
    with serve(root, max_context_chars=MAX_CONTEXT) as client:
        yield client


def pairs() -> list[tuple[str, str]]:
    """Questions about short contexts and one long enough for several 32-token windows."""
    rng = random.Random(5)
    contexts = [toy_paragraph(rng, words)[0] for words in (4, 9, 45)]
    assert len(contexts[-1]) <= MAX_CONTEXT
    return [(QUESTION, c) for c in contexts] + [("is it ?", "Ça, the plot:  brilliant!")]


def qa_body(questions: list[str], contexts: list[str], **fields: object) -> dict:
    return {"inputs": [tensor(questions, name="question"), tensor(contexts, name="context")],
            **fields}


def outputs_of(answer: dict) -> dict[str, dict]:
    return {out["name"]: out for out in answer["outputs"]}


def binary_outputs(r: object) -> dict[str, list]:
    """The outputs of a binary answer, decoded: BYTES as str, numbers as lists."""
    length = int(r.headers["Inference-Header-Content-Length"])
    head, data = json.loads(r.content[:length]), r.content[length:]
    decoded = {}
    for out in head["outputs"]:
        size = out["parameters"]["binary_data_size"]
        raw, data = data[:size], data[size:]
        if out["datatype"] == "BYTES":
            values, at = [], 0
            while at < len(raw):
                (n,) = struct.unpack_from("<I", raw, at)
                values.append(raw[at + 4: at + 4 + n].decode())
                at += 4 + n
        else:
            kind = {"INT64": "<i8", "FP32": "<f4", "BOOL": "?"}[out["datatype"]]
            values = np.frombuffer(raw, dtype=kind).tolist()
        decoded[out["name"]] = values
    assert data == b""
    return decoded


def test_model_metadata_describes_each_tasks_tensors(tasks: TestClient) -> None:
    ner = tasks.get("/v2/models/ner").json()
    assert ner["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert ner["outputs"] == [{"name": "entities", "datatype": "BYTES", "shape": [-1],
                               "parameters": {"content_type": "application/json"}}]
    assert ner["labels"] == ["LOC", "PER"]  # entity types, not IOB2 tags
    qa = tasks.get("/v2/models/qa/versions/1").json()
    assert qa["inputs"] == [{"name": n, "datatype": "BYTES", "shape": [-1]}
                            for n in ("question", "context")]
    assert [(o["name"], o["datatype"], o["shape"]) for o in qa["outputs"]] == [
        ("answer", "BYTES", [-1]), ("start", "INT64", [-1]), ("end", "INT64", [-1]),
        ("score", "FP32", [-1])]
    assert qa["labels"] == []
    tiny = tasks.get("/v2/models/tiny").json()
    assert [o["name"] for o in tiny["outputs"]] == ["label", "score", "probabilities",
                                                    "labels", "prediction_id"]
    assert all("parameters" not in o for o in tiny["outputs"])  # plain texts and numbers


def test_ner_entities_are_predicts_entities(tasks: TestClient) -> None:
    predicted = tasks.post("/predict", json={"texts": NER_TEXTS, "model": "ner"}).json()
    expected = [p["entities"] for p in predicted["predictions"]]
    assert any(expected), expected  # the comparison below is not of empty lists only
    r = tasks.post("/v2/models/ner/infer", json=infer_body(*NER_TEXTS, id="n1"))
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["id"] == "n1" and answer["model_version"] == "1"
    (entities,) = answer["outputs"]  # every output of the task: just this one
    assert entities["name"] == "entities" and entities["shape"] == [3]
    assert entities["parameters"] == {"content_type": "application/json"}
    assert [json.loads(e) for e in entities["data"]] == expected
    for text, found in zip(NER_TEXTS, expected, strict=True):
        for e in found:
            assert set(e) == {"label", "text", "start", "end", "score"}
            assert text[e["start"]: e["end"]] == e["text"]
    rows = tasks.post("/v2/models/ner/infer", json={
        "inputs": [tensor([[t] for t in NER_TEXTS], shape=[3, 1])],
        "parameters": {"binary_data_output": True}})
    assert rows.status_code == 200, rows.text
    assert json.loads(rows.content[:int(rows.headers["Inference-Header-Content-Length"])])[
        "outputs"][0]["shape"] == [3, 1]
    assert [json.loads(e) for e in binary_outputs(rows)["entities"]] == expected


def test_ner_refuses_other_tasks_tensors(tasks: TestClient) -> None:
    r = tasks.post("/v2/models/ner/infer", json=infer_body("a", outputs=[{"name": "label"}]))
    assert_oip_error(r, 400, "token classifier", "no output 'label'", "entities")
    r = tasks.post("/v2/models/ner/infer", json=qa_body(["q"], ["c"]))
    assert_oip_error(r, 400, "token classifier", "'text'")


def test_qa_answers_are_predicts_answers(tasks: TestClient) -> None:
    questions, contexts = map(list, zip(*pairs(), strict=True))
    inputs = [{"question": q, "context": c} for q, c in pairs()]
    predicted = tasks.post("/predict", json={"model": "qa", "inputs": inputs}).json()
    expected = [p["answer"] for p in predicted["predictions"]]
    r = tasks.post("/v2/models/qa/infer", json=qa_body(questions, contexts))
    assert r.status_code == 200, r.text
    out = outputs_of(r.json())
    assert list(out) == ["answer", "start", "end", "score"]
    assert {(o["datatype"], tuple(o["shape"])) for o in out.values()} >= {
        ("BYTES", (4,)), ("INT64", (4,)), ("FP32", (4,))}
    assert out["answer"]["data"] == [a["text"] for a in expected]
    assert out["start"]["data"] == [a["start"] for a in expected]
    assert out["end"]["data"] == [a["end"] for a in expected]
    assert out["score"]["data"] == [a["score"] for a in expected]
    for context, a in zip(contexts, expected, strict=True):
        assert context[a["start"]: a["end"]] == a["text"]
    # Both inputs as binary data, in input order; outputs binary, shape [n, 1].
    body = qa_body([], [], parameters={"binary_data_output": True})
    raw = []
    for spec, texts in zip(body["inputs"], (questions, contexts), strict=True):
        data = b"".join(struct.pack("<I", len(t.encode())) + t.encode() for t in texts)
        spec.update(shape=[4, 1], parameters={"binary_data_size": len(data)})
        del spec["data"]
        raw.append(data)
    head = json.dumps(body).encode()
    r = tasks.post("/v2/models/qa/infer", content=head + b"".join(raw),
                   headers={"Inference-Header-Content-Length": str(len(head))})
    assert r.status_code == 200, r.text
    got = binary_outputs(r)
    assert got["answer"] == out["answer"]["data"] and got["start"] == out["start"]["data"]
    assert got["end"] == out["end"]["data"]
    np.testing.assert_allclose(got["score"], out["score"]["data"], rtol=1e-6)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"inputs": [tensor(["q"], name="question")]}, ["missing input 'context'"]),
        (qa_body(["q", "q"], ["c"]), ["shapes [2] and [1]", "one context per question"]),
        ({"inputs": [tensor(["q"], name="question"), tensor([["c"]], name="context",
                                                            shape=[1, 1])]},
         ["one context per question"]),
        ({"inputs": [tensor(["q"], name="question"),
                     tensor([1.5], name="context", datatype="FP32")]},
         ["input 'context' has datatype 'FP32'", "BYTES"]),
        (qa_body(["q"], ["x" * (MAX_CONTEXT + 1)]),
         [f"element 0 of input 'context' has {MAX_CONTEXT + 1} characters",
          f"limit is {MAX_CONTEXT}"]),
        (qa_body(["q", " "], ["c", "c"]), ["element 1 of input 'question' is empty"]),
        ({"inputs": [tensor(["q"]), tensor(["q"], name="question")]}, ["'text' goes alone"]),
        (qa_body(["q"], ["c"], outputs=[{"name": "label"}]),
         ["question answerer", "no output 'label'", "answer, start, end, score"]),
        (infer_body("what ?"), ["question answerer", "'question' and 'context'"]),
    ],
    ids=["missing-context", "shape-mismatch", "rank-mismatch", "datatype", "context-size",
         "blank-question", "text-and-question", "classifier-output", "text-input"],
)
def test_bad_question_tensors_are_400(tasks: TestClient, body: dict, words: list[str]) -> None:
    assert_oip_error(tasks.post("/v2/models/qa/infer", json=body), 400, *words)


def test_a_classifier_refuses_questions(tasks: TestClient) -> None:
    r = tasks.post("/v2/models/tiny/infer", json=qa_body(["q"], ["c"]))
    assert_oip_error(r, 400, "text classifier", "'text'", "not 'context' and 'question'")


def test_classifier_answers_carry_prediction_ids_that_feedback_takes(
    tasks: TestClient,
) -> None:
    texts = ["a wonderful film", "dull and boring"]
    r = tasks.post("/v2/models/tiny/infer", json=infer_body(*texts))
    out = outputs_of(r.json())
    ids = out["prediction_id"]["data"]
    assert out["prediction_id"]["datatype"] == "BYTES" and out["prediction_id"]["shape"] == [2]
    assert len(set(ids)) == 2 and all(i.startswith("p1.") for i in ids)
    labels = out["label"]["data"]
    first = tasks.post("/feedback", json={"prediction_id": ids[0], "label": labels[0]})
    assert first.status_code == 200, first.text
    assert first.json() == {"model": "tiny", "version": "1", "correct": True, "shadow": None}
    again = tasks.post("/feedback", json={"prediction_id": ids[0], "label": labels[0]})
    assert again.status_code == 409  # the same id: a feedback store, not a parallel one
    prefix, _, signature = ids[1].split(".")
    forged = f"{prefix}.{ids[0].split('.')[1]}.{signature}"  # id 0's record, id 1's signature
    assert tasks.post("/feedback", json={"prediction_id": forged,
                                         "label": labels[1]}).status_code == 403
    # Outputs named without it: none issued in the answer; named: it alone, as binary.
    only_label = tasks.post("/v2/models/tiny/infer",
                            json=infer_body(*texts, outputs=[{"name": "label"}])).json()
    assert [o["name"] for o in only_label["outputs"]] == ["label"]
    asked = tasks.post("/v2/models/tiny/infer", json=infer_body(*texts, outputs=[
        {"name": "prediction_id", "parameters": {"binary_data": True}}]))
    (binary_id, _) = binary_outputs(asked)["prediction_id"]
    wrong = "positive" if labels[0] == "negative" else "negative"
    judged = tasks.post("/feedback", json={"prediction_id": binary_id, "label": wrong})
    assert judged.status_code == 200 and judged.json()["correct"] is False


def test_the_schema_describes_both_input_sets(tasks: TestClient) -> None:
    schemas = tasks.get("/openapi.json").json()["components"]["schemas"]
    request_input = schemas["RequestInput"]
    assert request_input["properties"]["name"]["enum"] == ["text", "question", "context"]
    sizes = {b["properties"]["name"]["const"]:
             b["properties"]["data"]["items"]["anyOf"][0]["maxLength"]
             for b in request_input["allOf"][0]["anyOf"]}
    assert sizes == {"text": 2000, "question": 2000, "context": MAX_CONTEXT}
    text, questions = schemas["InferenceRequest"]["anyOf"]
    assert text["properties"]["inputs"]["maxItems"] == 1
    assert len(questions["anyOf"]) == 2 * 32  # shapes [n] and [n, 1], n up to the limit
    names = schemas["RequestOutput"]["properties"]["name"]["enum"]
    assert {"prediction_id", "entities", "answer", "start", "end"} <= set(names)


def test_predict_names_the_field_of_a_bad_question(tasks: TestClient) -> None:
    """/predict's question checks (shared with V2) still name its own fields."""
    long = tasks.post("/predict", json={"model": "qa", "inputs": [
        {"question": "q", "context": "c"}, {"question": "q", "context": "x" * 401}]})
    assert long.status_code == 422
    assert "inputs[1].context has 401 characters; the limit is 400" in long.text
    blank = tasks.post("/predict", json={"model": "qa", "inputs": [
        {"question": "\u3000", "context": "c"}]})
    assert blank.status_code == 422 and "inputs[0].question is empty" in blank.text
