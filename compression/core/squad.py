"""Reading extractive question-answering data: the SQuAD v1.1 JSON layout
(`data[].paragraphs[].qas[].answers[]`, `answer_start` in characters of the context).

A question is held as a `QaSplit` row: its text is an `inference.qa.QuestionContext` (the
question and its paragraph), its raw label the first answer's text, and `answers` keeps
every reference answer as (text, character start) for the metric. An answer whose text is
not at its `answer_start` in the context is a one-line `DataError` naming the question.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from compression.core.errors import DataError
from compression.core.labels import LabelSpace
from compression.core.readers import TextSplit
from inference.qa import QuestionContext

SPAN_LABELS = ("start", "end")  # a QA head's two outputs, its "labels" in a manifest

AnswerRefs = tuple[tuple[str, int], ...]  # (text, character start) per reference answer


@dataclass(frozen=True)
class QaSplit(TextSplit):
    """A `TextSplit` of questions: `texts` are `QuestionContext` pairs; `answers` their
    reference answers; `ids` the questions' ids."""

    answers: list[AnswerRefs] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)

    def head(self, n: int | None) -> QaSplit:
        if n is None or n >= len(self):
            return self
        return self.pick(list(range(n)), self.source)

    def pick(self, rows: list[int], source: str) -> QaSplit:
        return QaSplit(source, [self.texts[i] for i in rows], [self.labels[i] for i in rows],
                       [self.answers[i] for i in rows], [self.ids[i] for i in rows])


@dataclass(frozen=True)
class SpanSpace(LabelSpace):
    """The label space of a QA head: `start` and `end`; a split encodes as its answers."""

    multi_label: ClassVar[bool] = False

    @classmethod
    def from_train(cls, train: TextSplit, names: Mapping[str, str] | None = None,
                   labels_file: str | Path | None = None) -> SpanSpace:
        if names or labels_file:
            raise DataError("label_names and labels_file are not for question-answering")
        return cls(raw=SPAN_LABELS, names=SPAN_LABELS)

    def encode(self, split: TextSplit) -> list[AnswerRefs]:
        if not isinstance(split, QaSplit):
            raise DataError(f"{split.source}: not question-answering data")
        return list(split.answers)

    @classmethod
    def strata(cls, split: TextSplit) -> list[str]:
        return [""] * len(split)  # one group: a dev split carved at random


def _answers(path: Path, qid: str, context: str, raw: Any) -> AnswerRefs:
    if not isinstance(raw, list) or not raw:
        raise DataError(f"{path}: question {qid!r} has no answers")
    out = []
    for answer in raw:
        text, start = answer.get("text"), answer.get("answer_start")
        if not isinstance(text, str) or not isinstance(start, int) or not text:
            raise DataError(f"{path}: question {qid!r}: an answer needs \"text\" and an "
                            "integer \"answer_start\"")
        if context[start: start + len(text)] != text:
            raise DataError(f"{path}: question {qid!r}: answer {text!r} is not at character "
                            f"{start} of its context")
        out.append((text, start))
    return tuple(out)


def _questions(path: Path, document: Any):  # type: ignore[no-untyped-def]
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise DataError(f"{path}: not the SQuAD layout (a top-level \"data\" list)")
    for article in document["data"]:
        for paragraph in article.get("paragraphs", []):
            context = paragraph.get("context")
            if not isinstance(context, str) or not context.strip():
                raise DataError(f"{path}: a paragraph of {article.get('title')!r} has no "
                                "context")
            for qa in paragraph.get("qas", []):
                qid, question = str(qa.get("id", "")), qa.get("question")
                if not isinstance(question, str) or not question.strip():
                    raise DataError(f"{path}: question {qid!r} has no text")
                yield qid, question, context, _answers(path, qid, context, qa.get("answers"))


def load_squad_split(source: str | Path, limit: int | None = None) -> QaSplit:
    """Read a SQuAD v1.1 JSON file (every question, in file order)."""
    path = Path(source)
    if not path.is_file():
        raise DataError(f"{path}: data file not found")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not SQuAD JSON ({exc})") from exc
    split = QaSplit(str(path), [], [], [], [])
    for qid, question, context, answers in _questions(path, document):
        split.texts.append(QuestionContext(question.strip(), context))
        split.labels.append(answers[0][0])
        split.answers.append(answers)
        split.ids.append(qid)
    if not split.texts:
        raise DataError(f"{path}: no questions")
    return split.head(limit)
