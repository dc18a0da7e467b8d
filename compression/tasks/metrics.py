"""Classification metrics in numpy (no torch: the memory probe imports this)."""

from __future__ import annotations

import numpy as np


def classification_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy and macro-F1 (the mean of per-class F1 over classes present)."""
    predictions = np.asarray(logits).argmax(axis=-1)
    labels = np.asarray(labels)
    f1s = []
    for cls in np.unique(np.concatenate([labels, predictions])):
        tp = np.sum((predictions == cls) & (labels == cls))
        fp = np.sum((predictions == cls) & (labels != cls))
        fn = np.sum((predictions != cls) & (labels == cls))
        denom = 2 * tp + fp + fn
        f1s.append(2 * tp / denom if denom else 0.0)
    return {
        "accuracy": float(np.mean(predictions == labels)),
        "macro_f1": float(np.mean(f1s)),
    }
