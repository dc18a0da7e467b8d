"""The shipped GoEmotions model (28 emotions, multi-label): it verifies, its model file
fits the 8 MB budget, a request naming it gets it while the SST-2 model stays the default,
its per-label thresholds are in the manifest, and the serving path (sigmoid per label,
the manifest's thresholds) reproduces its manifest's dev macro-F1."""

from __future__ import annotations

import numpy as np
import pytest
from shipped import DATA, MODELS, load_routed

from app.classifier import OnnxClassifier
from compression.core.readers import load_split
from registry import read_default_model, verify_version

NAME = "goemotions-emotion"
GOEMOTIONS = DATA / "goemotions"


@pytest.fixture(scope="module")
def classifier() -> OnnxClassifier:
    return load_routed(NAME)


def test_it_is_routed_with_thresholds(classifier: OnnxClassifier) -> None:
    assert read_default_model(MODELS) == "sst2-sentiment"
    manifest = verify_version(classifier.version_dir)
    assert manifest.label_setup == "multi-label" and len(manifest.labels) == 28
    assert manifest.thresholds is not None and len(manifest.thresholds) == 28
    assert all(0 < t < 1 for t in manifest.thresholds)
    assert manifest.files[manifest.model_file].bytes <= 8e6


def macro_f1(gold: list[set[str]], predicted: list[set[str]], labels: list[str]) -> float:
    scores = []
    for label in labels:
        tp = sum(label in g and label in p for g, p in zip(gold, predicted, strict=True))
        n = sum(label in g for g in gold) + sum(label in p for p in predicted)
        scores.append(2 * tp / n if n else 0.0)
    return float(np.mean(scores))


def test_serving_path_reproduces_the_manifest_macro_f1(classifier: OnnxClassifier) -> None:
    if not (GOEMOTIONS / "dev.tsv").is_file():
        pytest.skip(f"GoEmotions not found at {GOEMOTIONS}")
    dev = load_split(GOEMOTIONS / "dev.tsv", text_column="sentence", label_column="labels",
                     multi_label=True)
    predictions = classifier.predict(dev.texts)
    predicted = [set(p.labels or []) for p in predictions]
    gold = [set(names.split(",")) - {""} for names in dev.labels]
    f1 = macro_f1(gold, predicted, classifier.manifest.labels)
    assert abs(f1 - classifier.manifest.metrics["dev_macro_f1"]) <= 0.005
