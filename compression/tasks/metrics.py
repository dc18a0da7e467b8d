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


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Per-label probabilities of a multi-label head's logits, without overflow."""
    logits = np.asarray(logits, dtype=np.float64)  # (batch, n_labels)
    return np.exp(-np.logaddexp(0.0, -logits))


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denom = 2 * tp + fp + fn
    return np.divide(2 * tp, denom, out=np.zeros(np.shape(tp)), where=denom > 0)


def multi_label_metrics(predicted: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Micro-F1 (over all label decisions together), macro-F1 (the mean of per-label F1
    over the labels present in `labels` or `predicted`; one in neither has no F1) and
    accuracy (the share of rows whose whole label set is right), from multi-hot rows."""
    predicted = np.asarray(predicted).astype(bool)  # (batch, n_labels)
    gold = np.asarray(labels).astype(bool)
    tp = (predicted & gold).sum(axis=0)
    fp = (predicted & ~gold).sum(axis=0)
    fn = (~predicted & gold).sum(axis=0)
    present = (tp + fp + fn) > 0
    return {
        "accuracy": float(np.mean(np.all(predicted == gold, axis=1))),
        "macro_f1": float(np.mean(_f1(tp, fp, fn)[present])) if present.any() else 0.0,
        "micro_f1": float(_f1(tp.sum(), fp.sum(), fn.sum())),
    }


# A threshold stays inside (0, 1): a manifest refuses 0 and 1.
THRESHOLD_FLOOR, THRESHOLD_CEILING = 1e-6, 1 - 1e-6
DEFAULT_THRESHOLD = 0.5


def fit_threshold(probabilities: np.ndarray, gold: np.ndarray) -> float:
    """The threshold that maximises one label's F1 on (`probabilities`, `gold`): halfway
    between the lowest probability it calls positive and the next lower one (ties: the
    higher threshold). DEFAULT_THRESHOLD when the label never occurs."""
    gold = np.asarray(gold).astype(bool)
    positives = int(gold.sum())
    if positives == 0:
        return DEFAULT_THRESHOLD
    order = np.argsort(-probabilities, kind="stable")
    ranked, hits = probabilities[order], np.cumsum(gold[order])
    # Only the last of equal probabilities is a possible cut: equal ones go together.
    cuts = np.flatnonzero(np.append(ranked[1:] != ranked[:-1], True))
    f1 = 2 * hits[cuts] / (cuts + 1 + positives)  # 2tp / (2tp + fp + fn)
    cut = cuts[int(np.argmax(f1))]
    below = ranked[cut + 1] if cut + 1 < len(ranked) else 0.0
    return float(np.clip((ranked[cut] + below) / 2, THRESHOLD_FLOOR, THRESHOLD_CEILING))


def fit_thresholds(logits: np.ndarray, labels: np.ndarray) -> list[float]:
    """Per label, the decision threshold on its sigmoid probability with the best F1."""
    probabilities, gold = sigmoid(logits), np.asarray(labels)
    return [fit_threshold(probabilities[:, j], gold[:, j]) for j in range(gold.shape[1])]


def agreement(first: np.ndarray, second: np.ndarray) -> float:
    """The share of rows with the same answer (a label, or a whole multi-hot row)."""
    first, second = np.asarray(first), np.asarray(second)
    same = (first == second).reshape(len(first), -1).all(axis=1)
    return float(np.mean(same))
