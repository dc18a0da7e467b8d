"""The tasks by name."""

from __future__ import annotations

from compression.core.errors import ConfigError
from compression.tasks.classification import SequenceClassification

TASKS = {SequenceClassification.name: SequenceClassification()}
CLASSIFICATION = TASKS[SequenceClassification.name]


def task_for(name: str) -> SequenceClassification:
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; choose from {sorted(TASKS)}")
    return TASKS[name]
