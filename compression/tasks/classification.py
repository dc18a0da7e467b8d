"""Sequence classification: one text in, one label out, scored by accuracy and macro-F1.
Multi-label classification (`tasks.multi_label`) is this task with another label setup."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from compression.tasks.encoding import BatchEncoder
from compression.tasks.metrics import agreement, classification_metrics

ENCODER_KEYS = ("input_ids", "attention_mask", "token_type_ids")
UNLABELLED = -100  # the label of a sentence with no hard label (an augmented copy)


class SequenceClassification:
    """The head (`AutoModelForSequenceClassification`), the inputs (one text per row),
    the answers (the argmax of the logits) and the scores (accuracy, macro-F1)."""

    name = "sequence-classification"
    label_setup = "single-label"  # the registry manifest's name for it
    architecture_suffix = "ForSequenceClassification"  # in config.architectures
    output_names = ("logits",)
    best_metric = "accuracy"  # chooses the best checkpoint
    metric_names = ("accuracy", "macro_f1")  # what `metrics` returns
    # The functions of `training.losses` for the hard labels and the teacher's soft targets.
    hard_loss = "hard_label_ce"
    soft_loss = "soft_target_kl"
    problem_type: str | None = None  # the head's config.problem_type (None: inferred)
    tunes_thresholds = False  # whether answers need per-label thresholds fitted on dev
    per_token = False  # whether the logits are per token (batch, seq, n_labels)
    soft_loss_reads_labels = False  # whether `soft_loss` takes the labels (a mask)
    soft_loss_reads_mask = False  # whether `soft_loss` takes the attention mask
    model_takes_labels = True  # whether the head's forward computes its loss from `labels`

    def for_labels(self, labels: list[str]) -> SequenceClassification:
        """This task for a head with `labels` (a task scoring by label names binds them)."""
        return self

    def for_data(self, data: Any) -> SequenceClassification:
        """This task with the settings a data config holds for it (none here)."""
        return self

    def for_dev(self, tokenizer: Any, texts: list[str], labels: list[Any],
                max_length: int) -> SequenceClassification:
        """This task bound to the dev split its training-time metric reads (a task
        whose metric needs more than logits and labels binds it here)."""
        return self

    def head_class(self) -> type:
        """transformers' auto class of the head. Imported here, not at the top: this
        module is also read by torch-free evaluation."""
        from transformers import AutoModelForSequenceClassification

        return AutoModelForSequenceClassification

    def has_head(self, architectures: list[str]) -> bool:
        return any(a.endswith(self.architecture_suffix) for a in architectures)

    def head_config(self, labels: list[str]) -> dict[str, Any]:
        """The config fields of a fresh head for `labels`."""
        return {"num_labels": len(labels), "id2label": dict(enumerate(labels)),
                "label2id": {name: i for i, name in enumerate(labels)}}

    def is_task_of(self, model_config: Any) -> bool:
        """Whether a classifier with this config has this task's label setup."""
        return getattr(model_config, "problem_type", None) != "multi_label_classification"

    def labels_of(self, model: Any) -> list[str]:
        return [model.config.id2label[i] for i in range(model.config.num_labels)]

    def features(self, tokenizer: Any, texts: list[str], labels: list[int] | None,
                 max_length: int) -> dict[str, list[Any]]:
        """Training features, unpadded (a collator pads per batch)."""
        encoded = tokenizer(texts, truncation=True, max_length=max_length)
        features: dict[str, list[Any]] = {k: encoded[k] for k in ENCODER_KEYS if k in encoded}
        if labels is not None:
            features["labels"] = labels
        return features

    def batch_encoder(self, tokenizer_file: Path, max_length: int) -> BatchEncoder:
        """Inference inputs for a batch of texts, as the service encodes them."""
        return BatchEncoder(tokenizer_file, max_length)

    def unlabelled(self, n_labels: int) -> Any:
        """The label of a row with no hard label (`training.losses` skips it)."""
        return UNLABELLED

    def stack(self, rows: list[np.ndarray]) -> np.ndarray:
        """One text's (1, n_labels) logits a row (batch-1 runs) as one array."""
        return np.concatenate([np.asarray(r).reshape(1, -1) for r in rows])

    def gold(self, encoder: BatchEncoder, texts: list[str], labels: list[Any]) -> np.ndarray:
        """The labels as `metrics` reads them against logits from `encoder`'s inputs."""
        return np.asarray(labels)

    def answers(self, logits: np.ndarray, thresholds: list[float] | None = None) -> np.ndarray:
        """The answer per row: the label index with the highest logit."""
        return np.asarray(logits).argmax(axis=-1)

    def decode(self, encoder: BatchEncoder, texts: list[str], predictions: Any,
               thresholds: list[float] | None = None) -> Any:
        """The answers to `texts` from their stacked logits (here from logits alone)."""
        return self.answers(predictions, thresholds)

    def score(self, answers: Any, predictions: Any, gold: Any,
              thresholds: list[float] | None = None) -> dict[str, float]:
        """The metrics of one evaluated variant (here from its logits)."""
        return self.metrics(predictions, gold, thresholds)

    def agreement(self, first: np.ndarray, second: np.ndarray) -> float:
        """The share of rows on which two answer arrays agree."""
        return agreement(first, second)

    def fit_thresholds(self, logits: np.ndarray, labels: np.ndarray) -> list[float] | None:
        """Decision thresholds chosen on dev; None: the argmax needs none."""
        return None

    def metrics(self, logits: np.ndarray, labels: np.ndarray,
                thresholds: list[float] | None = None) -> dict[str, float]:
        return classification_metrics(logits, labels)
