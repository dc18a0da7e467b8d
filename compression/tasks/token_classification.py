"""Token classification (named entities): a tag per word, scored by entity-level F1.

The head is `AutoModelForTokenClassification`: logits (batch, seq, n_tags). Each word's
tag sits on its first sub-token; later sub-tokens and special tokens are IGNORED (-100)
by the loss and the metrics (`entity_metrics.align_labels`). Distillation learns the
teacher's tag distribution at those positions (`training.losses.token_soft_target_kl`).
The best checkpoint is the one with the best entity micro-F1.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from compression.tasks.classification import ENCODER_KEYS, SequenceClassification
from compression.tasks.encoding import BatchEncoder
from compression.tasks.entity_metrics import IGNORED, align_labels, entity_metrics, tag_rows


@dataclass(frozen=True)
class TokenClassification(SequenceClassification):
    """`SequenceClassification`'s methods for a tag per word; `tags` (the head's labels,
    in order) are bound by `for_labels` before anything is scored."""

    tags: tuple[str, ...] = ()

    name = "token-classification"
    label_setup = "single-label"  # a softmax over the tags at each word
    architecture_suffix = "ForTokenClassification"
    best_metric = "micro_f1"
    metric_names = ("accuracy", "macro_f1", "micro_f1", "precision", "recall")
    hard_loss = "token_ce"
    soft_loss = "token_soft_target_kl"
    soft_loss_reads_labels = True  # the soft loss skips IGNORED positions
    per_token = True

    def for_labels(self, labels: list[str]) -> TokenClassification:
        return replace(self, tags=tuple(labels))

    def bound_tags(self) -> tuple[str, ...]:
        if not self.tags:
            raise ValueError("token-classification: bind the tags first (for_labels)")
        return self.tags

    def head_class(self) -> type:
        from transformers import AutoModelForTokenClassification

        return AutoModelForTokenClassification

    def is_task_of(self, model_config: Any) -> bool:
        return self.has_head(list(getattr(model_config, "architectures", None) or []))

    def features(self, tokenizer: Any, texts: list[str], labels: list[Any] | None,
                 max_length: int) -> dict[str, list[Any]]:
        """Training features: `texts` are words joined by spaces, `labels` a tag index
        per word, aligned to the tokens (`align_labels`)."""
        encoded = tokenizer(texts, truncation=True, max_length=max_length,
                            return_offsets_mapping=labels is not None)
        features: dict[str, list[Any]] = {k: encoded[k] for k in ENCODER_KEYS if k in encoded}
        if labels is not None:
            tags = self.bound_tags()
            features["labels"] = [
                align_labels(text, row, encoded.word_ids(i), encoded["offset_mapping"][i], tags)
                for i, (text, row) in enumerate(zip(texts, labels, strict=True))]
        return features

    def stack(self, rows: list[np.ndarray]) -> np.ndarray:
        """Each text's (1, seq, n_tags) logits padded to the longest: (batch, seq, n_tags)."""
        longest = max(row.shape[-2] for row in rows)
        out = np.zeros((len(rows), longest, rows[0].shape[-1]), dtype=np.float32)
        for i, row in enumerate(rows):
            out[i, : row.shape[-2]] = row.reshape(-1, row.shape[-1])
        return out

    def gold(self, encoder: BatchEncoder, texts: list[str], labels: list[Any]) -> np.ndarray:
        """Each sentence's word tags aligned to `encoder`'s tokens, IGNORED-padded."""
        rows = [align_labels(text, row, e.word_ids, e.offsets, self.bound_tags())
                for text, row, e in zip(texts, labels, encoder.encode(texts), strict=True)]
        out = np.full((len(rows), max(len(r) for r in rows)), IGNORED, dtype=np.int64)
        for i, row in enumerate(rows):
            out[i, : len(row)] = row
        return out

    def agreement(self, first: np.ndarray, second: np.ndarray) -> float:
        """The share of sentences whose tags all agree (over the positions both have)."""
        width = min(first.shape[1], second.shape[1])
        return super().agreement(first[:, :width], second[:, :width])

    def unlabelled(self, n_labels: int) -> Any:
        return [IGNORED]

    def answers(self, logits: np.ndarray, thresholds: list[float] | None = None) -> np.ndarray:
        return np.asarray(logits).argmax(axis=-1)  # (batch, seq)

    def metrics(self, logits: np.ndarray, labels: np.ndarray,
                thresholds: list[float] | None = None) -> dict[str, float]:
        """Entity precision, recall and F1 (micro, macro, per type) and the tag accuracy
        over scored positions; `labels` (batch, seq) with IGNORED positions."""
        labels = np.asarray(labels)
        answers = self.answers(logits)
        scored = labels != IGNORED
        gold, predicted = tag_rows(answers, labels, self.bound_tags())
        return {"accuracy": float(np.mean(answers[scored] == labels[scored])),
                **entity_metrics(gold, predicted)}

