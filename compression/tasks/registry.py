"""The tasks by name, and the one a data config or a classifier's config calls for."""

from __future__ import annotations

from typing import Any

from compression.core.errors import ConfigError
from compression.tasks.classification import SequenceClassification
from compression.tasks.multi_label import MultiLabelClassification
from compression.tasks.question_answering import QuestionAnswering
from compression.tasks.token_classification import TokenClassification

TASKS: dict[str, SequenceClassification] = {
    SequenceClassification.name: SequenceClassification(),
    MultiLabelClassification.name: MultiLabelClassification(),
    TokenClassification.name: TokenClassification(),
    QuestionAnswering.name: QuestionAnswering(),
}
CLASSIFICATION = TASKS[SequenceClassification.name]
MULTI_LABEL = TASKS[MultiLabelClassification.name]
TOKEN_CLASSIFICATION = TASKS[TokenClassification.name]
QUESTION_ANSWERING = TASKS[QuestionAnswering.name]


def task_for(name: str) -> SequenceClassification:
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; choose from {sorted(TASKS)}")
    return TASKS[name]


def task_for_data(data: Any) -> SequenceClassification:
    """The task a data config's labels call for (`task`: token-classification or
    question-answering; `multi_label`: several labels a row). Unbound: `for_data` gives
    it the data's settings."""
    if getattr(data, "task", None) == QUESTION_ANSWERING.name:
        return QUESTION_ANSWERING
    if getattr(data, "task", None) == TOKEN_CLASSIFICATION.name:
        return TOKEN_CLASSIFICATION
    return MULTI_LABEL if getattr(data, "multi_label", False) else CLASSIFICATION


def task_of(model_config: Any) -> SequenceClassification:
    """The task of a classifier, from its config (`architectures`, `problem_type`)."""
    if QUESTION_ANSWERING.is_task_of(model_config):
        return QUESTION_ANSWERING
    if TOKEN_CLASSIFICATION.is_task_of(model_config):
        return TOKEN_CLASSIFICATION
    return MULTI_LABEL if MULTI_LABEL.is_task_of(model_config) else CLASSIFICATION
