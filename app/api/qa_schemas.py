"""Request and response bodies of question answering on `POST /predict`:
`{"inputs": [{"question": "...", "context": "..."}]}` in, one `answer` per input out."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from .text_pattern import TEXT_PATTERN

# A question or a context must hold a character other than whitespace.
NOT_BLANK = {"pattern": TEXT_PATTERN}


class QuestionIn(BaseModel):
    """One question about one context (the text the answer is cut from)."""

    model_config = ConfigDict(extra="forbid")

    question: StrictStr = Field(json_schema_extra=NOT_BLANK)
    context: StrictStr = Field(json_schema_extra=NOT_BLANK)


class AnswerOut(BaseModel):
    """A span of the context: `context[start:end]` is `text` (character offsets into the
    context as sent); `score` the product of its start and end probabilities."""

    text: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    score: float


class AnswerPredictionOut(BaseModel):
    """A question-answering version's answer to one input."""

    answer: AnswerOut


def publish_qa_limits(openapi: dict, max_question_chars: int, max_context_chars: int) -> None:
    """Write the configured question and context sizes into the OpenAPI schema."""
    props = openapi["components"]["schemas"]["QuestionIn"]["properties"]
    props["question"]["maxLength"] = max_question_chars
    props["context"]["maxLength"] = max_context_chars
