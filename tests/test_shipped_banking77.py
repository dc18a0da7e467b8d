"""The shipped BANKING77 intent model: it verifies, its model file fits the 8 MB budget, a
request naming it gets it while the SST-2 model stays the default, and it reproduces its
manifest's dev accuracy through the serving path on the same carved dev split."""

from __future__ import annotations

import numpy as np
import pytest
from shipped import DATA, MODELS, load_routed

from app.classifier import OnnxClassifier
from compression.config.steps import DataConfig
from compression.core.data import load_data
from registry import read_default_model, verify_version

NAME = "banking77-intent"
TRAIN = DATA / "banking77" / "train.tsv"


@pytest.fixture(scope="module")
def classifier() -> OnnxClassifier:
    return load_routed(NAME)


def test_it_is_routed_and_sst2_stays_the_default(classifier: OnnxClassifier) -> None:
    assert read_default_model(MODELS) == "sst2-sentiment"
    manifest = verify_version(classifier.version_dir)
    assert len(manifest.labels) == 77
    assert manifest.files[manifest.model_file].bytes <= 8e6


def test_serving_path_reproduces_the_manifest_accuracy(classifier: OnnxClassifier) -> None:
    if not TRAIN.is_file():
        pytest.skip(f"BANKING77 not found at {TRAIN}")
    # The dev split the pipeline carved (examples/banking77.yaml: 10 %, seed 0).
    splits = load_data(DataConfig(train=str(TRAIN), dev_fraction=0.1, dev_seed=0))
    texts, labels = splits.dev.texts, splits.dev.labels
    predicted = [p.label for p in classifier.predict(texts)]
    accuracy = float(np.mean(np.asarray(predicted) == np.asarray(labels)))
    assert abs(accuracy - classifier.manifest.metrics["dev_accuracy"]) <= 0.005
