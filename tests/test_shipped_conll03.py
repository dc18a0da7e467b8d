"""The shipped CoNLL-2003 entity recognizer: it verifies, its model file fits the 8 MB
budget, a request naming it gets it while the SST-2 model stays the default, and the
serving path (raw text in, character-offset entities out) reproduces its manifest's valid
entity F1 when the CoNLL words are sent as one space-joined text per sentence."""

from __future__ import annotations

import pytest
from shipped import DATA, MODELS, load_routed

from app.classifier import OnnxClassifier
from app.token_classifier import OnnxTokenClassifier
from compression.core.conll import load_token_split
from compression.tasks.entity_metrics import entity_metrics
from registry import read_default_model, verify_version

NAME = "conll03-ner"
VALID = DATA / "conll2003" / "valid.txt"


@pytest.fixture(scope="module")
def recognizer() -> OnnxClassifier:
    return load_routed(NAME, OnnxTokenClassifier)


def test_it_is_routed_and_sst2_stays_the_default(recognizer: OnnxClassifier) -> None:
    assert read_default_model(MODELS) == "sst2-sentiment"
    manifest = verify_version(recognizer.version_dir)
    assert manifest.task == "token-classification"
    assert {label[2:] for label in manifest.labels if label != "O"} == {
        "PER", "ORG", "LOC", "MISC"}
    assert manifest.files[manifest.model_file].bytes <= 8e6


def word_tags(words: list[str], entities: list) -> list[str]:
    """IOB2 tags of the words of `" ".join(words)` from served character-offset entities."""
    starts, offset = [], 0
    for word in words:
        starts.append(offset)
        offset += len(word) + 1
    tags = ["O"] * len(words)
    for entity in entities:
        inside = [i for i, s in enumerate(starts) if entity.start <= s < entity.end]
        for n, i in enumerate(inside):
            tags[i] = f"{'B' if n == 0 else 'I'}-{entity.label}"
    return tags


def test_serving_path_reproduces_the_manifest_f1(recognizer: OnnxClassifier) -> None:
    if not VALID.is_file():
        pytest.skip(f"CoNLL-2003 not found at {VALID}")
    split = load_token_split(VALID)
    sentences = [split.words(i) for i in range(len(split.texts))]
    texts = [" ".join(words) for words in sentences]
    predictions = recognizer.predict(texts)
    for text, prediction in zip(texts, predictions, strict=True):
        assert all(text[e.start:e.end] == e.text for e in prediction.entities or [])
    predicted = [word_tags(words, p.entities or [])
                 for words, p in zip(sentences, predictions, strict=True)]
    gold = [split.tags(i) for i in range(len(split.texts))]
    f1 = entity_metrics(gold, predicted)["micro_f1"]
    # The pipeline scored the model on the words as given; the service splits raw text
    # into words itself (e.g. "U.S.-based"), so a word boundary may differ: half a point.
    assert abs(f1 - recognizer.manifest.metrics["dev_micro_f1"]) <= 0.005
