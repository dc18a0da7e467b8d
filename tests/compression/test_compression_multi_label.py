"""The multi-label task on hand-made numbers: micro- and macro-F1, per-label thresholds
chosen on dev, answers at thresholds, and the losses that train it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from compression.tasks.metrics import fit_threshold, fit_thresholds, multi_label_metrics
from compression.tasks.registry import CLASSIFICATION, MULTI_LABEL, task_for, task_of
from compression.training import losses


def _logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def test_micro_and_macro_f1_on_a_hand_made_example() -> None:
    gold = np.array([[1, 0, 0, 0],
                     [1, 1, 0, 0],
                     [0, 1, 0, 0],
                     [0, 0, 0, 0]])
    predicted = np.array([[1, 0, 1, 0],
                          [1, 0, 0, 0],
                          [0, 1, 0, 0],
                          [0, 0, 0, 0]])
    scores = multi_label_metrics(predicted, gold)
    # label 0: tp 2 -> F1 1; label 1: tp 1, fn 1 -> 2/3; label 2: fp 1 -> 0; label 3: in
    # neither, no F1. Micro: tp 3, fp 1, fn 1 -> 6/8.
    assert scores["macro_f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert scores["micro_f1"] == pytest.approx(0.75)
    assert scores["accuracy"] == pytest.approx(0.5)  # rows 2 and 3 are wholly right


def test_a_threshold_maximises_its_labels_f1_on_dev() -> None:
    probabilities = np.array([0.9, 0.8, 0.6, 0.4, 0.3, 0.1])
    gold = np.array([1, 1, 0, 1, 0, 0])
    # Cutting below 0.4 finds all three positives with one false one: F1 6/7 beats 4/5
    # (cut below 0.8). The threshold lies halfway to the next lower probability.
    assert fit_threshold(probabilities, gold) == pytest.approx(0.35)
    assert fit_threshold(probabilities, np.zeros(6)) == 0.5  # never occurs: the default
    # Equal probabilities are cut together, and every threshold stays inside (0, 1).
    assert fit_threshold(np.array([0.7, 0.7, 0.2]), np.array([1, 0, 0])) == pytest.approx(0.45)
    assert 0 < fit_threshold(np.array([1.0, 1.0]), np.array([1, 1])) < 1


def test_thresholds_are_fitted_per_label_and_decide_the_answers() -> None:
    probabilities = np.array([[0.9, 0.2], [0.3, 0.25], [0.2, 0.1]])
    logits = np.vectorize(_logit)(probabilities)
    gold = np.array([[1, 0], [0, 1], [0, 0]])
    thresholds = fit_thresholds(logits, gold)
    assert thresholds == pytest.approx([0.6, 0.225])
    answers = MULTI_LABEL.answers(logits, thresholds)
    assert answers.tolist() == [[True, False], [False, True], [False, False]]
    assert MULTI_LABEL.metrics(logits, gold, thresholds)["macro_f1"] == pytest.approx(1.0)
    # At the default 0.5 the second label is never answered.
    assert MULTI_LABEL.answers(logits).tolist() == [[True, False], [False, False],
                                                    [False, False]]
    assert MULTI_LABEL.agreement(answers, MULTI_LABEL.answers(logits)) == pytest.approx(2 / 3)


def test_the_task_seam_tells_the_label_setups_apart() -> None:
    class Config:
        problem_type = "multi_label_classification"

    assert task_of(Config()) is MULTI_LABEL and task_of(object()) is CLASSIFICATION
    assert task_for("multi-label-classification") is MULTI_LABEL
    assert MULTI_LABEL.head_config(["a", "b"])["problem_type"] == "multi_label_classification"
    assert "problem_type" not in CLASSIFICATION.head_config(["a", "b"])
    assert (MULTI_LABEL.best_metric, CLASSIFICATION.best_metric) == ("macro_f1", "accuracy")
    assert CLASSIFICATION.fit_thresholds(np.zeros((2, 2)), np.zeros(2)) is None


def test_binary_soft_targets_are_zero_when_matched_and_grow_with_the_gap() -> None:
    teacher = torch.tensor([[2.0, -1.0, 0.0], [0.5, 0.5, -3.0]])
    assert losses.binary_soft_target_kl(teacher.clone(), teacher, 2.0).abs().item() < 1e-6
    near = losses.binary_soft_target_kl(teacher + 0.5, teacher, 2.0)
    far = losses.binary_soft_target_kl(teacher + 2.0, teacher, 2.0)
    assert 0 < near.item() < far.item()
    # Per label, not a softmax: shifting every logit of a row by the same amount changes
    # each label's probability, so it is a loss (softmax-KL would not see it).
    assert losses.soft_target_kl(teacher + 1.0, teacher, 2.0).abs().item() < 1e-6
    p_t, p_s = torch.sigmoid(teacher / 2.0), torch.sigmoid((teacher + 0.5) / 2.0)
    kl = p_t * torch.log(p_t / p_s) + (1 - p_t) * torch.log((1 - p_t) / (1 - p_s))
    assert near.item() == pytest.approx(4.0 * kl.mean().item(), rel=1e-4)


def test_multi_label_bce_skips_rows_without_labels() -> None:
    logits = torch.tensor([[2.0, -2.0], [5.0, 5.0]])
    labels = torch.tensor([[1.0, 0.0], [-100.0, -100.0]])  # the second: an augmented copy
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits[:1], labels[:1])
    assert losses.multi_label_bce(logits, labels).item() == pytest.approx(expected.item())
    assert losses.multi_label_bce(logits, torch.full((2, 2), -100.0)).item() == 0.0


def test_quantize_agreement_compares_label_sets_not_top_labels(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two models with the same top label but another set of labels above 0.5 disagree
    for a multi-label task, and agree for a single-label one."""
    import numpy as np

    from compression.exporting import steps
    from compression.tasks.registry import CLASSIFICATION, MULTI_LABEL

    outputs = {"a": np.array([[3.0, 1.0, -2.0]]), "b": np.array([[3.0, -1.0, -2.0]])}

    class FakeRunner:
        def __init__(self, path: str, threads: int) -> None:
            self.out = outputs[str(path)]

        def logits(self, batch: object) -> np.ndarray:
            return self.out

    monkeypatch.setattr(steps, "OnnxRunner", FakeRunner)
    encoder = lambda texts: texts  # noqa: E731 - the fake runners ignore their input
    assert steps.batch1_agreement("a", "b", encoder, ["x"], MULTI_LABEL) == 0.0
    assert steps.batch1_agreement("a", "b", encoder, ["x"], CLASSIFICATION) == 1.0
