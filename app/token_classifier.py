"""A token-classification (named-entity) registry version as a predictor: the entities
of each text, with character offsets into the text as sent.

Each text is tokenized whole; a text longer than the model's window
(`manifest.max_length`) is cut into overlapping windows (`stride` tokens shared by
neighbours, `tokenizers`' overflowing encodings). A word is the tokenizer's word
(`Encoding.word_ids`); its tag is the argmax at its first sub-token, read in the window
where that sub-token lies farthest from the window's edges, its probability the softmax
there. Words are then grouped into entities over the whole text
(`inference.entities.tag_spans`: a stray I- starts one), so an entity that crosses a
window boundary is found once and whole. An entity's score is the mean of its words'.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Encoding

from inference import TextEncoder
from inference.entities import OUTSIDE, tag_spans
from registry import QA_TASK, Manifest

from .classifier import Entity, OnnxClassifier, Prediction, length_groups, softmax
from .question_answerer import OnnxQuestionAnswerer

TOKEN_TASK = "token-classification"  # manifest.task of a token classifier


@dataclass
class _Word:
    """One word of a text: its characters, and its best reading so far."""

    start: int
    end: int
    centrality: int = -1
    tag: int = 0
    probability: float = 0.0


def window_stride(max_length: int) -> int:
    """Tokens two neighbouring windows share: a quarter of the window's content."""
    return max(1, (max_length - 2) // 4)


class OnnxTokenClassifier(OnnxClassifier):
    """`OnnxClassifier` for a `task: token-classification` version: `predict(texts)`
    answers each text's entities (`Prediction.entities`)."""

    @staticmethod
    def configure_encoder(encoder: TextEncoder, manifest: Manifest) -> None:
        """Overflowing windows instead of cutting: a long text is read whole."""
        encoder.tokenizer.enable_truncation(manifest.max_length,
                                            stride=window_stride(manifest.max_length))

    def predict(self, texts: list[str]) -> list[Prediction]:
        """Each text's entities; answers come back in input order, one per text."""
        if not texts:
            return []
        encodings = self.encoder.encode(texts)
        windows = [[e, *e.overflowing] for e in encodings]
        flat = [w for text_windows in windows for w in text_windows]
        probs: list[np.ndarray] = [np.empty(0)] * len(flat)
        for group in length_groups([len(w.ids) for w in flat]):
            feeds = self.encoder.feed([flat[i] for i in group])
            (logits,) = self.session.run([self._output], feeds)  # (group, seq, n_tags)
            for row, i in enumerate(group):
                probs[i] = softmax(np.asarray(logits[row], dtype=np.float64))
        out, at = [], 0
        for text, text_windows in zip(texts, windows, strict=True):
            out.append(self._answer(text, text_windows, probs[at: at + len(text_windows)]))
            at += len(text_windows)
        return out

    def _answer(self, text: str, windows: list[Encoding], probs: list[np.ndarray]
                ) -> Prediction:
        words = read_words(windows, probs)
        tags = [self.labels[w.tag] for w in words]
        entities = []
        for kind, first, end in tag_spans(tags):
            start, stop = words[first].start, words[end - 1].end
            score = float(np.mean([w.probability for w in words[first:end]]))
            entities.append(Entity(kind, text[start:stop], start, stop, score))
        return summary(entities, [w.probability for w in words], self.labels)


def read_words(windows: list[Encoding], probs: list[np.ndarray]) -> list[_Word]:
    """The text's words in order, each with its tag read at its first sub-token in the
    window where that sub-token is most central."""
    words: dict[int, _Word] = {}
    for window in windows:
        for word_id, (start, end) in zip(window.word_ids, window.offsets, strict=True):
            if word_id is None:
                continue
            word = words.setdefault(word_id, _Word(start, end))
            word.start, word.end = min(word.start, start), max(word.end, end)
    for window, window_probs in zip(windows, probs, strict=True):
        content = [p for p, w in enumerate(window.word_ids) if w is not None]
        if not content:
            continue
        first, last = content[0], content[-1]
        for position in content:
            word = words[window.word_ids[position]]
            centrality = min(position - first, last - position)
            if window.offsets[position][0] == word.start and centrality > word.centrality:
                row = window_probs[position]  # (n_tags,)
                word.centrality, word.tag = centrality, int(row.argmax())
                word.probability = float(row[word.tag])
    return [words[i] for i in sorted(words)]


def summary(entities: list[Entity], probabilities: list[float],
            labels: list[str]) -> Prediction:
    """A token model's answer in the classifier's fields: `label`/`score` the most
    confident entity's type and score (O and the mean word probability when there is
    none), `scores` each entity type's best score (0 when absent)."""
    kinds = sorted({label.partition("-")[2] for label in labels if label != OUTSIDE})
    scores = {kind: max((e.score for e in entities if e.label == kind), default=0.0)
              for kind in kinds}
    if entities:
        best = max(entities, key=lambda e: e.score)
        return Prediction(best.label, best.score, scores, entities=entities)
    mean = float(np.mean(probabilities)) if probabilities else 1.0
    return Prediction(OUTSIDE, mean, scores, entities=[])


def predictor_class(version_dir: Path) -> type[OnnxClassifier]:
    """The predictor for a version, by its manifest's task (an unreadable manifest
    gets the classifier, whose loading reports the problem)."""
    try:
        task = Manifest.read(Path(version_dir)).task
    except Exception:  # noqa: BLE001  (verify_version, in load, says what is wrong)
        return OnnxClassifier
    if task == QA_TASK:
        return OnnxQuestionAnswerer
    return OnnxTokenClassifier if task == TOKEN_TASK else OnnxClassifier
