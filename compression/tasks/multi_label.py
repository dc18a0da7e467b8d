"""Multi-label sequence classification: one text in, any number of labels out.

The head gives a logit per label and `problem_type: multi_label_classification` (a
sigmoid per label, binary cross-entropy); a label is answered when its sigmoid
probability reaches its threshold, chosen per label on dev for the best F1. Scored by
micro- and macro-F1 (the best checkpoint by macro-F1) and exact-match accuracy.
Distillation learns from the teacher's per-label probabilities (`training.losses`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from compression.tasks.classification import UNLABELLED, SequenceClassification
from compression.tasks.metrics import (
    DEFAULT_THRESHOLD,
    fit_thresholds,
    multi_label_metrics,
    sigmoid,
)


class MultiLabelClassification(SequenceClassification):
    """`SequenceClassification` with a sigmoid per label; labels are multi-hot rows."""

    name = "multi-label-classification"
    label_setup = "multi-label"
    best_metric = "macro_f1"
    metric_names = ("accuracy", "macro_f1", "micro_f1")
    hard_loss = "multi_label_bce"
    soft_loss = "binary_soft_target_kl"
    problem_type = "multi_label_classification"
    tunes_thresholds = True

    def head_config(self, labels: list[str]) -> dict[str, Any]:
        return {**super().head_config(labels), "problem_type": self.problem_type}

    def is_task_of(self, model_config: Any) -> bool:
        return getattr(model_config, "problem_type", None) == self.problem_type

    def features(self, tokenizer: Any, texts: list[str], labels: list[Any] | None,
                 max_length: int) -> dict[str, list[Any]]:
        """As single-label, with each multi-hot row as float32 (BCE's target type)."""
        rows = None if labels is None else [np.asarray(r, dtype=np.float32) for r in labels]
        return super().features(tokenizer, texts, rows, max_length)

    def unlabelled(self, n_labels: int) -> Any:
        return [float(UNLABELLED)] * n_labels

    def answers(self, logits: np.ndarray, thresholds: list[float] | None = None) -> np.ndarray:
        """Multi-hot rows: each label whose probability reaches its threshold."""
        logits = np.asarray(logits)  # (batch, n_labels)
        cut = np.full(logits.shape[-1], DEFAULT_THRESHOLD) if thresholds is None else thresholds
        return sigmoid(logits) >= np.asarray(cut)

    def fit_thresholds(self, logits: np.ndarray, labels: np.ndarray) -> list[float] | None:
        return fit_thresholds(logits, labels)

    def metrics(self, logits: np.ndarray, labels: np.ndarray,
                thresholds: list[float] | None = None) -> dict[str, float]:
        return multi_label_metrics(self.answers(logits, thresholds), labels)
