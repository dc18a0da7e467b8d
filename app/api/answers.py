"""Question answering on `POST /predict`: check the inputs, queue them on a
question-answering version's batcher (through the shared inference path, so routing,
pinning, batching and time-outs are those of every request) and answer with spans.

A request of `inputs` to a version that classifies texts, or of `texts` to one that
answers questions, is refused with what to send instead: a 409, as for a request that
names a version the registry does not hold (404), because the request fits the schema
and only the chosen version's task conflicts with it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from ..errors import BadInput, Conflict
from ..models import LoadedVersion
from ..question_answerer import QA_TASK, QuestionContext
from ..settings import Settings
from .qa_schemas import QuestionIn
from .serving import InferencePath, is_blank

__all__ = ["answer_questions", "check_pairs", "check_questions", "expect_texts"]


def check_questions(inputs: list[QuestionIn], settings: Settings) -> list[QuestionContext]:
    """The pairs of one request, refused (422, naming the field) when there are none or
    too many, or a question or context is blank, not valid Unicode or too long."""
    if not inputs:
        raise BadInput("'inputs' is empty: send at least one {question, context}")
    if len(inputs) > settings.texts_limit:
        raise BadInput(f"{len(inputs)} inputs in one request; the limit is "
                       f"{settings.texts_limit}: split the request")
    return check_pairs([(item.question, item.context) for item in inputs], settings,
                       lambda i, field: f"inputs[{i}].{field}")


def check_pairs(pairs: list[tuple[str, str]], settings: Settings,
                where: Callable[[int, str], str]) -> list[QuestionContext]:
    """(question, context) pairs, each refused when blank, not valid Unicode or too long;
    `where(i, "question" or "context")` names the value in the refusal, as the API calls
    it (`/predict`'s field, V2's tensor element)."""
    limits = {"question": settings.max_text_chars, "context": settings.max_context_chars}
    for i, pair in enumerate(pairs):
        for (field, limit), value in zip(limits.items(), pair, strict=True):
            if is_blank(value):
                raise BadInput(f"{where(i, field)} is empty or only whitespace")
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise BadInput(f"{where(i, field)} is not valid Unicode (lone surrogate)"
                               ) from None
            if len(value) > limit:
                raise BadInput(f"{where(i, field)} has {len(value)} characters; the limit "
                               f"is {limit}")
    return [QuestionContext(question, context) for question, context in pairs]


def _expect_questions(loaded: LoadedVersion) -> None:
    if loaded.manifest.task != QA_TASK:
        raise Conflict(f"model version {loaded.ref} classifies texts: send 'texts', not "
                       "'inputs'")


def expect_texts(loaded: LoadedVersion) -> None:
    """Refuse texts for a question-answering version (it needs questions and contexts)."""
    if loaded.manifest.task == QA_TASK:
        raise Conflict(f"model version {loaded.ref} answers questions: send 'inputs', a "
                       "list of {\"question\": ..., \"context\": ...}")


async def answer_questions(inputs: list[QuestionIn], name: str | None, version: str | None,
                           routing_key: str | None, path: InferencePath
                           ) -> tuple[Any, list[dict[str, Any]]]:
    """(the version that answered, one `{"answer": {...}}` per input, in order)."""
    pairs = check_questions(inputs, path.settings)
    served = await path.classify(pairs, name, version, routing_key,  # type: ignore[arg-type]
                                 check=_expect_questions)
    return served.ref, [{"answer": asdict(p.answer)} for p in served.predictions]
