"""A token-classification version's entities: character offsets into the text as sent
(accents, punctuation, runs of spaces, emoji), and long texts cut into overlapping windows
whose answers merge without duplicate or split entities. A fake session tags by token
id, so the answers do not depend on a trained model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tiny_models import build_tokenizer

from app.token_classifier import OnnxTokenClassifier, window_stride
from inference import TextEncoder
from registry import Lineage, Manifest

TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
# Token -> tag: "good" begins a person, "great" continues one (a stray one starts one),
# "film" is a place; everything else is outside.
RULES = {"good": 1, "great": 2, "film": 3}


class _TaggingSession:
    """Stands in for onnxruntime: logits (batch, seq, n_tags) from each token's id."""

    def __init__(self, vocab: dict[str, int]) -> None:
        self.tag_of = {vocab[token]: tag for token, tag in RULES.items()}
        self.batches: list[tuple[int, int]] = []

    def get_outputs(self) -> list:  # type: ignore[type-arg]
        return [type("Output", (), {"name": "logits"})()]

    def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        ids = feeds["input_ids"]
        self.batches.append(ids.shape)
        logits = np.zeros((*ids.shape, len(TAGS)), dtype=np.float32)
        for (row, position), token in np.ndenumerate(ids):
            logits[row, position, self.tag_of.get(int(token), 0)] = 4.0
        return [logits]


def _tagger(tmp_path: Path, max_length: int) -> OnnxTokenClassifier:
    tokenizer = build_tokenizer()
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    manifest = Manifest(name="ner", version="1", task="token-classification", labels=TAGS,
                        max_length=max_length, lineage=Lineage(method="test"))
    encoder = TextEncoder(tmp_path / "tokenizer.json", max_length)
    encoder.tokenizer.enable_truncation(max_length, stride=window_stride(max_length))
    return OnnxTokenClassifier(tmp_path, manifest, _TaggingSession(tokenizer.get_vocab()),
                               encoder)


@pytest.mark.parametrize("text", [
    "Góod  GREAT, in the fílm!",
    "😀 good great 😀 film.",
    "  good\tgreat   great , film",
    "great film",  # a stray I- starts an entity
])
def test_entity_offsets_point_into_the_text_as_sent(tmp_path: Path, text: str) -> None:
    (prediction,) = _tagger(tmp_path, 64).predict([text])
    entities = prediction.entities
    assert [e.label for e in entities] == ["PER", "LOC"]
    for entity in entities:
        assert text[entity.start: entity.end] == entity.text
        assert 0 < entity.score <= 1
    person = entities[0].text.lower().replace("ó", "o").replace(",", "").split()
    assert person[0] in ("good", "great") and set(person) <= {"good", "great"}
    assert entities[1].text.lower() in ("film", "fílm")
    assert prediction.label in ("PER", "LOC") and set(prediction.scores) == {"PER", "LOC"}


def test_no_entity_answers_o(tmp_path: Path) -> None:
    (prediction,) = _tagger(tmp_path, 64).predict(["the movie was fun"])
    assert prediction.entities == [] and prediction.label == "O"


def test_long_texts_merge_windows_without_duplicate_or_split_entities(tmp_path: Path) -> None:
    filler = "the movie was really fun and it is so"
    person = "good " + " ".join(["great"] * 9)  # longer than a window's stride
    text = f"{filler} {person} {filler} film {filler} {filler} good"
    tagger = _tagger(tmp_path, 12)
    (prediction,) = tagger.predict([text])
    assert len(tagger.encoder.encode([text])[0].overflowing) >= 4  # many windows
    found = [(e.label, e.text) for e in prediction.entities]
    assert found == [("PER", person), ("LOC", "film"), ("PER", "good")]
    for entity in prediction.entities:
        assert text[entity.start: entity.end] == entity.text
    # Several texts in one batch answer in order, each on its own.
    answers = tagger.predict(["film", text, "the"])
    assert [len(a.entities) for a in answers] == [1, 3, 0]
