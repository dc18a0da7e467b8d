"""A question-answering version as a predictor, with a fake session that points at the
positive word: the windows of all the questions of a batch (several requests' worth) run
together, each answer is the best span of its own windows, and its text is its slice of
the context as sent (accents, runs of spaces)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tiny_models import POSITIVE, build_tokenizer

from app.question_answerer import OnnxQuestionAnswerer
from inference import TextEncoder
from inference.qa import QuestionContext
from registry import Lineage, Manifest


class _PointingSession:
    """Stands in for onnxruntime: start and end logits high at a positive word's token."""

    def __init__(self, vocab: dict[str, int]) -> None:
        self.positive = {vocab[w] for w in POSITIVE}
        self.batches: list[tuple[int, int]] = []

    def get_outputs(self) -> list:  # type: ignore[type-arg]
        return [type("Output", (), {"name": "logits"})()]

    def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        ids, types = feeds["input_ids"], feeds["token_type_ids"]
        self.batches.append(ids.shape)
        logits = np.zeros((*ids.shape, 2), dtype=np.float32)
        hits = np.isin(ids, list(self.positive)) & (types == 1)  # in the context
        logits[hits] = 6.0
        return [logits]


def _answerer(tmp_path: Path) -> tuple[OnnxQuestionAnswerer, _PointingSession]:
    tokenizer = build_tokenizer()
    tokenizer_file = tmp_path / "tokenizer.json"
    tokenizer.save(str(tokenizer_file))
    manifest = Manifest(name="qa", version="1", task="question-answering",
                        labels=["start", "end"], max_length=24,
                        qa={"doc_stride": 4, "max_question_length": 6, "max_answer_length": 3},
                        lineage=Lineage(method="test"))
    session = _PointingSession(tokenizer.get_vocab())
    encoder = TextEncoder(tokenizer_file, 24)
    return OnnxQuestionAnswerer(tmp_path, manifest, session, encoder), session  # type: ignore[arg-type]


def test_windows_of_several_questions_run_together_and_answer_each(tmp_path: Path) -> None:
    answerer, session = _answerer(tmp_path)
    long_context = " ".join(["the film is a story of it"] * 5) + "  Wonderful  " + "so too"
    pairs = [QuestionContext("is it good ?", "the movie was   fun"),
             QuestionContext("is it ?", long_context),
             QuestionContext("it ?", "Ça, the plot: brilliant!")]
    answers = [p.answer for p in answerer.predict(pairs)]
    assert [a.text for a in answers] == ["fun", "Wonderful", "brilliant"]
    for pair, answer in zip(pairs, answers, strict=True):
        assert pair.context[answer.start: answer.end] == answer.text
        assert 0 < answer.score <= 1
    windows = sum(len(w) for w in answerer.encoder.windows(pairs))
    assert windows > len(pairs)  # the long context needs several windows
    assert sum(rows for rows, _ in session.batches) == windows
    assert len(session.batches) < windows  # windows of different questions share runs


def test_no_input_no_run(tmp_path: Path) -> None:
    answerer, session = _answerer(tmp_path)
    assert answerer.predict([]) == [] and session.batches == []


def test_models_lists_a_question_answerers_settings(make_registry) -> None:  # type: ignore[no-untyped-def]
    """GET /models shows how a QA version reads its contexts (its manifest's `qa`, window
    size included), read from the registry without loading it; classifiers show none."""
    from service_helpers import serve

    root = make_registry({"tiny": {"1": 100}})
    folder = root / "reader" / "3"
    folder.mkdir(parents=True)
    Manifest(name="reader", version="3", task="question-answering", labels=["start", "end"],
             max_length=256, qa={"doc_stride": 64, "max_question_length": 32,
                                 "max_answer_length": 20, "n_best": 10},
             lineage=Lineage(method="test")).write(folder)
    folder = root / "reader" / "4"  # no qa in its manifest: the defaults it serves with
    folder.mkdir()
    Manifest(name="reader", version="4", task="question-answering", labels=["start", "end"],
             max_length=128, lineage=Lineage(method="test")).write(folder)
    with serve(root) as client:
        models = {m["name"]: m for m in client.get("/models").json()["models"]}
    reader = {v["version"]: v for v in models["reader"]["versions"]}
    assert reader["3"]["task"] == "question-answering" and reader["3"]["loaded"] is False
    assert reader["3"]["qa"] == {"max_length": 256, "doc_stride": 64,
                                 "max_question_length": 32, "max_answer_length": 20,
                                 "n_best": 10}
    assert reader["4"]["qa"] == {"max_length": 128, "doc_stride": 32,
                                 "max_question_length": 64, "max_answer_length": 30,
                                 "n_best": 20}
    tiny = models["tiny"]["versions"][0]
    assert "qa" not in tiny and tiny["label_setup"] == "single-label" and tiny["labels"]
