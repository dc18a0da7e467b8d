"""Question answering end to end on a tiny model: fine-tune a span head on SQuAD-layout
JSON, distil a 1-layer student (start/end soft targets and hidden states), prune its heads
and FFN neurons and recover, prune its vocabulary, export, quantize (static INT8, float
outputs), evaluate exact match and F1, register with `task: question-answering` and serve
answers over POST /predict, with 422s for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tiny_models import publish_tiny_version
from toy_qa import QUESTION, write_toy_squad

from app.main import create_app
from app.settings import Settings
from compression.config.pipeline_file import PipelineConfig
from compression.pipeline import Pipeline
from registry import Manifest, RoutingTable

FAST = {"epochs": 8, "learning_rate": 5e-3, "batch_size": 16, "warmup": 0}
WINDOWS = {"max_length": 32, "doc_stride": 8, "max_question_length": 8, "max_answer_length": 5}


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory, tiny_encoder: Path) -> dict:
    work = tmp_path_factory.mktemp("qa-chain")
    config = PipelineConfig.from_dict({
        "name": "toy-qa", "work_dir": str(work / "run"), "registry": str(work / "models"),
        # Contexts of up to 41 words: many need two or three windows of 32 tokens.
        "data": {"train": str(write_toy_squad(work / "train.json", 200, 1, (4, 40))),
                 "dev": str(write_toy_squad(work / "dev.json", 40, 2, (4, 40))),
                 "task": "question-answering", **WINDOWS},
        "teacher": {"pretrained": str(tiny_encoder), "train": FAST},
        "students": [{"name": "l1", "train": {**FAST, "epochs": 6},
                      "distill": {"num_layers": 1, "temperature": 2.0, "alpha_ce": 0.5,
                                  "alpha_kl": 0.5, "alpha_hidden": 1.0},
                      "prune": {"heads": 1, "ffn": 32, "importance_batches": 4},
                      "prune_vocab": {"unseen": "chars", "min_count": 1}}],
        "export": {"teacher": False},
        "quantize": [{"name": "int8", "mode": "static", "float_outputs": True}],
        "evaluate": {"rounds": 1, "calibration_size": 32},
        "register": {"variants": ["l1-pruned-vocab-int8"], "max_drop": 100},
    })
    out = Pipeline(config).run()
    registry = work / "models"
    # A text classifier beside it, routed too: `inputs` sent to it are refused.
    publish_tiny_version(registry, "tiny", "1", seed=0)
    routes = RoutingTable.read(registry)
    routes.routes["tiny"] = {"1": 100.0}
    routes.write(registry)
    return {"out": out, "registry": registry, "dev": work / "dev.json"}


def test_the_chain_scores_spans_and_registers_a_question_answerer(chain: dict) -> None:
    reports = {r.name: r for r in chain["out"]["reports"]}
    assert set(reports) >= {"teacher-torch-fp32", "l1-int8", "l1-pruned-int8",
                            "l1-pruned-vocab-int8"}
    assert reports["teacher-torch-fp32"].f1 > 0.9  # a learnable toy task
    assert reports["l1-pruned-vocab-int8"].f1 > 0.8
    assert reports["l1-pruned-vocab-int8"].exact_match == reports["l1-pruned-vocab-int8"].accuracy
    (published,) = chain["out"]["published"]
    manifest = Manifest.read(Path(published))
    assert manifest.task == "question-answering" and manifest.labels == ["start", "end"]
    assert manifest.qa is not None
    assert (manifest.qa.doc_stride, manifest.qa.max_answer_length) == (8, 5)
    assert manifest.metrics["dev_f1"] == reports["l1-pruned-vocab-int8"].f1
    assert "prune-structure" in manifest.lineage.method


def test_evaluate_scores_a_published_reader_on_squad_json(chain: dict, tmp_path: Path) -> None:
    from compression.cli.main import main

    (published,) = chain["out"]["published"]
    code = main(["evaluate", published, "--data", str(chain["dev"]), "--task",
                 "question-answering", "--rounds", "1", "--output", str(tmp_path),
                 *[f"--{k.replace('_', '-')}={v}" for k, v in WINDOWS.items()]])
    assert code == 0
    (report,) = json.loads((tmp_path / "evaluation.json").read_text())
    assert report["f1"] > 0.8 and report["exact_match"] == report["accuracy"]


def _serve(chain: dict, **settings: object) -> TestClient:
    return TestClient(create_app(Settings(models_dir=chain["registry"], intra_op_threads=1,
                                          **settings)))


def test_the_registered_student_answers_several_questions_with_slices(chain: dict) -> None:
    contexts = ["the film was wonderful", "it is very really funny and this was not quite",
                " ".join(["the plot and actor was"] * 6 + ["brilliant"] + ["it is"] * 5)]
    inputs = [{"question": QUESTION, "context": c} for c in contexts]
    with _serve(chain) as client:
        served = client.post("/predict", json={"model": "toy-qa", "inputs": inputs})
    assert served.status_code == 200, served.text
    predictions = served.json()["predictions"]
    assert [p["answer"]["text"] for p in predictions] == ["wonderful", "funny", "brilliant"]
    for context, prediction in zip(contexts, predictions, strict=True):
        answer = prediction["answer"]
        assert context[answer["start"]: answer["end"]] == answer["text"]
        assert 0 < answer["score"] <= 1


def test_bad_question_input_is_refused_naming_the_field(chain: dict) -> None:
    good = {"question": QUESTION, "context": "the film was good"}
    with _serve(chain, max_context_chars=30) as client:
        missing = client.post("/predict", json={"model": "toy-qa", "inputs": [
            good, {"question": QUESTION}]})
        too_long = client.post("/predict", json={"model": "toy-qa", "inputs": [
            {"question": QUESTION, "context": "it was good " * 5}]})
        blank = client.post("/predict", json={"model": "toy-qa", "inputs": [
            {"question": " ", "context": "it was good"}]})
        texts_to_qa = client.post("/predict", json={"model": "toy-qa", "texts": ["good"]})
        inputs_to_classifier = client.post("/predict", json={"model": "tiny",
                                                             "inputs": [good]})
        both = client.post("/predict", json={"model": "toy-qa", "inputs": [good],
                                             "texts": ["good"]})
    assert missing.status_code == 422 and "inputs.1.context" in missing.json()["error"]["message"]
    assert too_long.status_code == 422
    assert "inputs[0].context has 60 characters; the limit is 30" in too_long.text
    assert blank.status_code == 422 and "inputs[0].question" in blank.text
    # Schema-valid, but the version's task takes the other kind of input: a conflict.
    assert texts_to_qa.status_code == 409 and "send 'inputs'" in texts_to_qa.text
    assert inputs_to_classifier.status_code == 409 and "send 'texts'" in inputs_to_classifier.text
    assert both.status_code == 422


def test_auto_fine_tunes_a_reader_and_publishes_it_by_f1(tmp_path: Path, tiny_encoder: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from compression.cli.main import main
    from compression.evaluation import evaluate

    monkeypatch.setattr(evaluate, "peak_memory_mb", lambda *a, **k: float("nan"))
    train = write_toy_squad(tmp_path / "train.json", 120, 1, (4, 30))
    dev = write_toy_squad(tmp_path / "dev.json", 30, 2, (4, 30))
    code = main(["auto", "--model", str(tiny_encoder), "--train", str(train), "--dev", str(dev),
                 "--name", "qa", "--registry", str(tmp_path / "models"),
                 "--work-dir", str(tmp_path / "run"), "--max-drop", "100",
                 "--task", "question-answering",
                 *[f"--{k.replace('_', '-')}={v}" for k, v in WINDOWS.items()]])
    assert code == 0
    manifest = Manifest.read(tmp_path / "models" / "qa" / "1")
    assert manifest.task == "question-answering" and manifest.qa is not None
    assert manifest.budget is not None and manifest.budget.metric == "dev_f1"
