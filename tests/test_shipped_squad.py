"""The shipped SQuAD reader: it verifies, its model file fits the 10 MB budget, a request
naming it gets it while the SST-2 model stays the default, and the serving path (question
and context in, a character span of the context out) reproduces its manifest's dev F1."""

from __future__ import annotations

import pytest
from shipped import DATA, MODELS, load_routed

from app.classifier import OnnxClassifier
from app.question_answerer import OnnxQuestionAnswerer
from compression.core.squad import load_squad_split
from compression.tasks.squad_metrics import squad_scores
from registry import RoutingTable, read_default_model, verify_version

NAME = "squad-qa"
DEV = DATA / "squad" / "dev.json"


@pytest.fixture(scope="module")
def reader() -> OnnxClassifier:
    return load_routed(NAME, OnnxQuestionAnswerer)


def test_it_is_routed_and_sst2_stays_the_default(reader: OnnxClassifier) -> None:
    assert NAME in RoutingTable.read(MODELS).routes
    assert read_default_model(MODELS) == "sst2-sentiment"
    manifest = verify_version(reader.version_dir)
    assert manifest.task == "question-answering"
    assert manifest.qa is not None and manifest.qa.doc_stride < manifest.max_length
    assert manifest.files[manifest.model_file].bytes <= 10e6


def test_serving_path_reproduces_the_manifest_f1(reader: OnnxClassifier) -> None:
    if not DEV.is_file():
        pytest.skip(f"SQuAD not found at {DEV}")
    dev = load_squad_split(DEV)
    predictions = reader.predict(list(dev.texts))
    for pair, prediction in zip(dev.texts, predictions, strict=True):
        answer = prediction.answer
        assert pair.context[answer.start:answer.end] == answer.text
    scores = squad_scores(
        {qid: p.answer.text for qid, p in zip(dev.ids, predictions, strict=True)},
        {qid: [text for text, _ in refs] for qid, refs in zip(dev.ids, dev.answers,
                                                               strict=True)})
    # The same windows and search as the pipeline's scoring, through the service's code.
    assert abs(scores["f1"] - reader.manifest.metrics["dev_f1"]) <= 0.005
