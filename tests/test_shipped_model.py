"""The shipped registry: the default sentiment model gets all traffic; every shipped version
verifies, fits the size budget, gives the same answer to a text whatever it is batched
with, and reproduces its manifest's dev accuracy through the serving path (onnxruntime +
tokenizers, no torch)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from app.classifier import OnnxClassifier
from registry import RoutingTable, list_versions, verify_version

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
DEV = ROOT.parent / "shared" / "data" / "sst2" / "dev.tsv"
NAME = "sst2-sentiment"
# Probabilities of one text alone vs inside a batch: static INT8 and weight-only models
# compute the same numbers; allow for float summation order in the runtime's kernels.
PROBABILITY_TOLERANCE = 1e-5

SENTENCES = [
    "a gorgeous , witty , seductive movie .",
    "the plot is nothing but boilerplate .",
    "it 's a charming and often affecting journey .",
    "unflinchingly bleak and desperate",
    "the acting , costumes , music , cinematography and sound are all astounding given the "
    "production 's austere locales .",
    "a sometimes tedious film .",
    "this is a film well worth seeing , talking and singing heads and all .",
    "it never fails to engage us .",
    "too slow , too long and too little happens .",
    "an utterly charming and hilarious film that reminded me of the best of the disney "
    "comedies from the 60s .",
]


def routed_version() -> Path:
    routes = RoutingTable.read(MODELS).routes
    assert NAME in routes, f"models/routes.json routes no traffic to {NAME}"
    weights = routes[NAME]
    version = max(weights, key=weights.get)
    assert version in list_versions(MODELS, NAME)
    return MODELS / NAME / version


def test_the_default_version_is_routed_traffic() -> None:
    assert RoutingTable.read(MODELS).routes[NAME][routed_version().name] == 100.0


# Every shipped version, not only the default: the others are one PUT /admin/routes away.
@pytest.fixture(scope="module", params=list_versions(MODELS, NAME))
def classifier(request: pytest.FixtureRequest) -> OnnxClassifier:
    return OnnxClassifier.load(MODELS / NAME / request.param, providers="cpu", threads=1)


def dev_sentences() -> tuple[list[str], list[int]]:
    if not DEV.is_file():
        pytest.skip(f"SST-2 dev set not found at {DEV}")
    rows = [line.split("\t") for line in DEV.read_text().splitlines()[1:] if line.strip()]
    return [r[0] for r in rows], [int(r[1]) for r in rows]


def test_every_shipped_version_verifies_and_fits_the_size_budget() -> None:
    versions = list_versions(MODELS, NAME)
    assert versions, "no shipped version of the default model"
    total = 0
    for version in versions:
        manifest = verify_version(MODELS / NAME / version)
        assert manifest.labels == ["negative", "positive"]
        total += sum(entry.bytes for entry in manifest.files.values())
    assert total < 30e6, f"committed model files take {total / 1e6:.1f} MB (budget 30 MB)"


def test_a_text_gets_the_same_answer_alone_and_in_mixed_batches(
    classifier: OnnxClassifier,
) -> None:
    texts = list(SENTENCES)
    if DEV.is_file():
        texts += dev_sentences()[0][:200]
    alone = [classifier.predict([t])[0] for t in texts]
    rng = random.Random(0)
    for _ in range(20):
        batch = rng.choices(texts, k=32)  # different lengths, so different padding
        for text, answer in zip(batch, classifier.predict(batch), strict=True):
            reference = alone[texts.index(text)]
            assert answer.label == reference.label, text
            got = np.array([answer.scores[k] for k in classifier.labels])
            want = np.array([reference.scores[k] for k in classifier.labels])
            assert np.abs(got - want).max() < PROBABILITY_TOLERANCE, text


def test_serving_path_reproduces_the_manifest_accuracy(classifier: OnnxClassifier) -> None:
    texts, labels = dev_sentences()
    predicted = [classifier.labels.index(p.label) for p in classifier.predict(texts)]
    accuracy = float(np.mean(np.asarray(predicted) == np.asarray(labels)))
    recorded = classifier.manifest.metrics["dev_accuracy"]
    # Same model, same tokenizer, same texts: only kernel rounding may differ.
    assert abs(accuracy - recorded) <= 0.005, (accuracy, recorded)


ANSWERS = Path(__file__).resolve().parent / "fixtures" / "shipped_answers.json"


def test_every_version_serves_the_answers_recorded_for_its_committed_files(
    classifier: OnnxClassifier,
) -> None:
    """Recorded from the committed model files by the service as it stood before the
    restructure: refactoring the serving path must not move an answer."""
    recorded = json.loads(ANSWERS.read_text())[classifier.version_dir.name]
    for text, answer, want in zip(SENTENCES, classifier.predict(SENTENCES), recorded,
                                  strict=True):
        assert answer.label == want["label"], text
        for label, score in want["scores"].items():
            # Recorded on an AVX2 machine; onnxruntime's INT8 kernels take other paths
            # with AVX-512 VNNI (no 16-bit saturation), which moved scores by up to 2.4e-3
            # there. A refactoring bug moves them far more.
            assert abs(answer.scores[label] - score) < 1e-2, (text, label)
