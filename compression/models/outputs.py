"""A head's output as one logits tensor, whatever the head: what export, evaluation,
distillation and pruning read."""

from __future__ import annotations

from typing import Any

import torch


def output_logits(output: Any) -> torch.Tensor:
    """(batch, n_labels) or (batch, seq, n_labels) logits; a question-answering head's
    start and end logits stacked as (batch, seq, 2), start first."""
    start = getattr(output, "start_logits", None)
    if start is not None:
        return torch.stack([start, output.end_logits], dim=-1)  # (B, L, 2)
    return output.logits


def is_per_token(model: torch.nn.Module) -> bool:
    """Whether a model's logits have a sequence axis (token classifiers, QA heads)."""
    return type(model).__name__.endswith(("ForTokenClassification", "ForQuestionAnswering"))


def is_question_answerer(model: torch.nn.Module) -> bool:
    """Whether a model is an extractive QA head (start and end logits per token)."""
    return type(model).__name__.endswith("ForQuestionAnswering")
