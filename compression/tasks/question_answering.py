"""Extractive question answering: the answer to a question is a span of its context.

The head is `AutoModelForQuestionAnswering`: a start and an end logit per token. Inside
the compression steps they travel stacked as one array, logits (batch, seq, 2) with start
at [..., 0] and end at [..., 1] (`models.outputs.output_logits`; the ONNX export's one
`logits` output has that layout too). A question and its context are read in windows
(`inference.qa`); a window's label is the (start, end) token pair of the first reference
answer when the window holds it whole, else (0, 0), the first token. Distillation learns
the teacher's start and end distributions over each window's tokens
(`training.losses.span_soft_target_kl`). Scored by the official SQuAD v1.1 exact match and
F1 (`tasks.squad_metrics`) of the best span over each question's windows; `accuracy` is
the exact match. The best checkpoint is the one with the best F1.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from compression.core.squad import SPAN_LABELS
from compression.tasks.classification import SequenceClassification
from compression.tasks.squad_metrics import squad_scores
from inference.qa import Answer, PairEncoder, WindowSettings, answer_tokens, best_answer

NO_SPAN = (0, 0)  # the label of a window that does not hold the answer whole


@dataclass(frozen=True)
class DevWindows:
    """The dev questions' windows, bound for the metric of training-time evaluations
    (whose logits come one row per window, in order)."""

    windows: list[list[Any]]
    contexts: list[str]
    references: list[list[str]]


@dataclass(frozen=True)
class QuestionAnswering(SequenceClassification):
    """`SequenceClassification`'s methods for answer spans; `settings` (windows, answer
    search) are bound from the data config by `for_data`."""

    settings: WindowSettings = WindowSettings()
    dev: DevWindows | None = field(default=None, compare=False, repr=False)

    name = "question-answering"
    label_setup = "single-label"
    architecture_suffix = "ForQuestionAnswering"
    best_metric = "f1"
    metric_names = ("accuracy", "exact_match", "f1")
    hard_loss = "span_ce"
    soft_loss = "span_soft_target_kl"
    soft_loss_reads_mask = True  # the soft loss skips padding positions
    per_token = True
    model_takes_labels = False  # the head's forward takes start/end positions, not labels

    def for_data(self, data: Any) -> QuestionAnswering:
        return replace(self, settings=data.window_settings())

    def head_class(self) -> type:
        from transformers import AutoModelForQuestionAnswering

        return AutoModelForQuestionAnswering

    def head_config(self, labels: list[str]) -> dict[str, Any]:
        return super().head_config(list(SPAN_LABELS))

    def is_task_of(self, model_config: Any) -> bool:
        return self.has_head(list(getattr(model_config, "architectures", None) or []))

    def encoder(self, tokenizer: Any, max_length: int) -> PairEncoder:
        """The windows of a fast tokenizer (transformers'), as the service cuts them."""
        return PairEncoder(tokenizer.backend_tokenizer,
                           replace(self.settings, max_length=max_length))

    def features(self, tokenizer: Any, texts: list[str], labels: list[Any] | None,
                 max_length: int) -> dict[str, list[Any]]:
        """One row per window; `labels` (each question's reference answers) become each
        window's (start, end) tokens of the first answer, or NO_SPAN."""
        features: dict[str, list[Any]] = {"input_ids": [], "attention_mask": [],
                                          "token_type_ids": []}
        spans: list[tuple[int, int]] = []
        for row, windows in enumerate(self.encoder(tokenizer, max_length).windows(texts)):
            for window in windows:
                features["input_ids"].append(window.ids)
                features["attention_mask"].append(window.attention_mask)
                features["token_type_ids"].append(window.type_ids)
                if labels is not None:
                    text, start = labels[row][0]
                    spans.append(answer_tokens(window, start, start + len(text)))
        if labels is not None:
            features["labels"] = spans  # tuples: the collator stacks them (batch, 2)
        return features

    def for_dev(self, tokenizer: Any, texts: list[str], labels: list[Any],
                max_length: int) -> QuestionAnswering:
        windows = self.encoder(tokenizer, max_length).windows(texts)
        return replace(self, dev=DevWindows(
            windows, [t.context for t in texts],  # type: ignore[attr-defined]
            [[text for text, _ in refs] for refs in labels]))

    def batch_encoder(self, tokenizer_file: Path, max_length: int) -> PairEncoder:
        return PairEncoder(tokenizer_file, replace(self.settings, max_length=max_length))

    def stack(self, rows: list[np.ndarray]) -> list[np.ndarray]:  # type: ignore[override]
        """Each question's (windows, seq, 2) logits, as they are: window counts differ."""
        return list(rows)

    def gold(self, encoder: Any, texts: list[str], labels: list[Any]) -> list[list[str]]:
        return [[text for text, _ in refs] for refs in labels]

    def decode(self, encoder: Any, texts: list[str], predictions: Any,
               thresholds: list[float] | None = None) -> list[Answer]:
        """Each question's best span over its windows."""
        windows = encoder.windows(texts)
        return [best_answer(t.context, w, p, self.settings)  # type: ignore[attr-defined]
                for t, w, p in zip(texts, windows, predictions, strict=True)]

    def score(self, answers: Any, predictions: Any, gold: Any,
              thresholds: list[float] | None = None) -> dict[str, float]:
        return self._scores([a.text for a in answers], gold)

    @staticmethod
    def _scores(texts: list[str], references: list[list[str]]) -> dict[str, float]:
        keys = [str(i) for i in range(len(references))]
        scores = squad_scores(dict(zip(keys, texts, strict=True)),
                              dict(zip(keys, references, strict=True)))
        return {"accuracy": scores["exact_match"], **scores}

    def answers(self, logits: np.ndarray, thresholds: list[float] | None = None) -> np.ndarray:
        """Per window, the argmax start and end tokens: (windows, 2)."""
        return np.asarray(logits).argmax(axis=-2)

    def agreement(self, first: Any, second: Any) -> float:
        """The share of questions answered with the same span (or, for window arrays,
        the same argmax tokens)."""
        if first and isinstance(first[0], Answer):
            return float(np.mean([(a.start, a.end) == (b.start, b.end)
                                  for a, b in zip(first, second, strict=True)]))
        return super().agreement(np.asarray(first), np.asarray(second))

    def unlabelled(self, n_labels: int) -> Any:
        return NO_SPAN

    def metrics(self, logits: np.ndarray, labels: np.ndarray,
                thresholds: list[float] | None = None) -> dict[str, float]:
        """Exact match and F1 of the dev questions from their windows' logits, one row per
        window in order (padding at -100 past a window's end is never read)."""
        if self.dev is None:
            raise ValueError("question-answering: bind the dev windows first (for_dev)")
        logits, at, texts = np.asarray(logits), 0, []
        for windows, context in zip(self.dev.windows, self.dev.contexts, strict=True):
            rows = logits[at: at + len(windows)]
            at += len(windows)
            texts.append(best_answer(context, windows, list(rows), self.settings).text)
        return self._scores(texts, self.dev.references)
