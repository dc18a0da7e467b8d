"""Token classification end to end on a tiny model: fine-tune on CoNLL columns, distil a
1-layer student (per-token soft targets and hidden states), prune its heads and FFN
neurons (importance from the tagged positions) and recover, prune its vocabulary, export,
quantize (static INT8, float outputs), evaluate entity F1, register with
`task: token-classification` and serve the entities over POST /predict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from toy_ner import write_toy_conll

from app.main import create_app
from app.settings import Settings
from compression.config.pipeline_file import PipelineConfig
from compression.pipeline import Pipeline
from registry import Manifest

FAST = {"epochs": 10, "learning_rate": 5e-3, "batch_size": 16, "warmup": 0}


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory, tiny_encoder: Path) -> dict:
    work = tmp_path_factory.mktemp("ner-chain")
    config = PipelineConfig.from_dict({
        "name": "toy-ner", "work_dir": str(work / "run"), "registry": str(work / "models"),
        "data": {"train": str(write_toy_conll(work / "train.txt", 160, seed=1)),
                 "dev": str(write_toy_conll(work / "valid.txt", 40, seed=2)),
                 "task": "token-classification", "max_length": 32},
        "teacher": {"pretrained": str(tiny_encoder), "train": FAST},
        "students": [{"name": "l1", "train": {**FAST, "epochs": 6},
                      "distill": {"num_layers": 1, "temperature": 2.0, "alpha_ce": 0.5,
                                  "alpha_kl": 0.5, "alpha_hidden": 1.0},
                      "prune": {"heads": 1, "ffn": 32, "importance_batches": 4},
                      "prune_vocab": {"unseen": "nearest", "min_count": 1,
                                      "keep_chars": False}},
                     # The teacher itself, every layer kept, each narrower, recovered.
                     {"name": "t", "init": "teacher", "prune_only": True,
                      "prune": {"heads": 1, "ffn": 32, "importance_batches": 4},
                      "recover": {"train": {**FAST, "epochs": 6},
                                  "distill": {"temperature": 2.0, "alpha_ce": 0.5,
                                              "alpha_kl": 0.5}}}],
        "export": {"teacher": False},
        "quantize": [{"name": "int8", "mode": "static", "float_outputs": True}],
        "evaluate": {"rounds": 1, "calibration_size": 32},
        "register": {"variants": ["l1-pruned-vocab-int8"], "max_drop": 100},
    })
    return {"out": Pipeline(config).run(), "registry": work / "models", "work": work}


def test_the_chain_scores_entities_and_registers_a_token_classifier(chain: dict) -> None:
    reports = {r.name: r for r in chain["out"]["reports"]}
    assert set(reports) == {f"{name}-{form}" for name in ("l1", "l1-vocab", "l1-pruned",
                                                          "l1-pruned-vocab")
                            for form in ("fp32", "int8")} | {"teacher-torch-fp32",
                                                             "t-pruned-fp32", "t-pruned-int8"}
    assert reports["teacher-torch-fp32"].micro_f1 > 0.9  # entity F1: a separable toy task
    assert reports["l1-pruned-vocab-int8"].micro_f1 > 0.8
    pruned = json.loads((chain["work"] / "run" / "students" / "l1-pruned" / "model" /
                         "config.json").read_text())["pruned_layers"]
    assert pruned == [{"heads": 1, "intermediate_size": 32}]
    teacher = json.loads((chain["work"] / "run" / "teacher" / "model" / "config.json")
                         .read_text())
    narrowed = json.loads((chain["work"] / "run" / "students" / "t-pruned" / "model" /
                           "config.json").read_text())["pruned_layers"]
    assert narrowed == [{"heads": 1, "intermediate_size": 32}] * teacher["num_hidden_layers"]
    assert reports["t-pruned-int8"].micro_f1 > 0.8
    (published,) = chain["out"]["published"]
    manifest = Manifest.read(Path(published))
    assert manifest.task == "token-classification"
    assert manifest.labels == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    assert manifest.metrics["dev_micro_f1"] == reports["l1-pruned-vocab-int8"].micro_f1
    assert manifest.label_setup == "single-label" and manifest.thresholds is None


def test_the_registered_student_serves_entities(chain: dict) -> None:
    texts = ["anna bell went to paris", "the film was good in oslo with carl"]
    settings = Settings(models_dir=chain["registry"], intra_op_threads=1)
    with TestClient(create_app(settings)) as client:
        served = client.post("/predict", json={"model": "toy-ner", "texts": texts})
        v2 = client.post("/v2/models/toy-ner/infer", json={"inputs": [
            {"name": "text", "shape": [2], "datatype": "BYTES", "data": texts}]})
    assert served.status_code == 200, served.text
    found = [{(e["label"], e["text"]) for e in p["entities"]}
             for p in served.json()["predictions"]]
    assert found[0] >= {("PER", "anna bell"), ("LOC", "paris")}
    assert found[1] >= {("LOC", "oslo"), ("PER", "carl")}
    for text, prediction in zip(texts, served.json()["predictions"], strict=True):
        for entity in prediction["entities"]:
            assert text[entity["start"]: entity["end"]] == entity["text"]
            assert 0 < entity["score"] <= 1
    # The Open Inference Protocol answers the same entities, one JSON array per text.
    assert v2.status_code == 200, v2.text
    (entities,) = [o for o in v2.json()["outputs"] if o["name"] == "entities"]
    assert [json.loads(e) for e in entities["data"]] == [
        p["entities"] for p in served.json()["predictions"]]
