"""A question-answering registry version as a predictor: the answer span of each
(question, context) pair, with character offsets into the context as sent.

The pair is read in windows (`inference.qa`: `manifest.max_length` tokens, neighbours
sharing `manifest.qa.doc_stride`); the windows of every question in a batch, whichever
request it came from, run together in length groups, and each question's answer is the
best span over its own windows (`inference.qa.best_answer`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from inference import TextEncoder
from inference.qa import Answer, PairEncoder, QuestionContext, WindowSettings, best_answer
from registry import QA_TASK, Manifest, QaSettings

from .classifier import OnnxClassifier, length_groups

__all__ = ["QA_TASK", "AnswerPrediction", "OnnxQuestionAnswerer", "QuestionContext",
           "window_settings"]


@dataclass(frozen=True)
class AnswerPrediction:
    """One question's answer: `context[answer.start:answer.end] == answer.text`."""

    answer: Answer


def window_settings(manifest: Manifest) -> WindowSettings:
    qa = manifest.qa or QaSettings()
    return WindowSettings(manifest.max_length, qa.doc_stride, qa.max_question_length,
                          qa.max_answer_length, qa.n_best)


class OnnxQuestionAnswerer(OnnxClassifier):
    """`OnnxClassifier` for a `task: question-answering` version: `predict(pairs)`
    answers each `QuestionContext` with a span of its context. Its model's one output,
    `logits` (batch, seq, 2), holds each token's start and end logit."""

    def __init__(self, version_dir: Path, manifest: Manifest, session: ort.InferenceSession,
                 encoder: TextEncoder) -> None:
        super().__init__(version_dir, manifest, session, encoder)
        self.settings = window_settings(manifest)
        # The same tokenizer file, cutting pairs into windows instead of texts.
        self.encoder = PairEncoder(version_dir / manifest.tokenizer_file, self.settings,
                                   encoder.input_names)

    def predict(self, texts: list[QuestionContext]) -> list[AnswerPrediction]:  # type: ignore[override]
        """Each pair's answer; answers come back in input order, one per pair."""
        if not texts:
            return []
        windows = self.encoder.windows(texts)
        flat = [w for pair_windows in windows for w in pair_windows]
        logits: list[np.ndarray] = [np.empty(0)] * len(flat)
        for group in length_groups([len(w.ids) for w in flat]):
            feeds = self.encoder.feed([flat[i] for i in group])
            (out,) = self.session.run([self._output], feeds)  # (group, seq, 2)
            for row, i in enumerate(group):
                logits[i] = np.asarray(out[row], dtype=np.float64)
        answers, at = [], 0
        for pair, pair_windows in zip(texts, windows, strict=True):
            rows = logits[at: at + len(pair_windows)]
            at += len(pair_windows)
            answers.append(AnswerPrediction(
                best_answer(pair.context, pair_windows, rows, self.settings)))
        return answers
