"""One registry version as a predictor: onnxruntime for the model, `tokenizers` for text.

No torch, no transformers: this is the whole inference path of the serving image.
A single-label version answers with a softmax over its labels; a multi-label one
(`manifest.label_setup`) with a sigmoid per label and every label at or above its
threshold (`manifest.thresholds`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from inference import (
    ProviderChoice,
    ProviderUnavailable,
    TextEncoder,
    open_session,
    resolve_providers,
)
from registry import Manifest, verify_version

log = logging.getLogger(__name__)

__all__ = ["Entity", "OnnxClassifier", "Prediction", "ProviderChoice", "ProviderUnavailable",
           "length_groups", "load_timed", "resolve_providers", "sigmoid", "softmax"]

# Length grouping inside a batch: a sub-batch grows while its longest sequence stays
# within this ratio (plus slack) of its shortest. Padding costs more than batching saves
# for small models on CPU (sorting by length nearly doubled throughput: docs/experiments/sst2.md).
_GROUP_RATIO = 1.25
_GROUP_SLACK = 2


@dataclass(frozen=True)
class Entity:
    """A named entity found in a text: its type, `text[start:end]` (character offsets
    into the text as sent) and the mean probability of its words' tags."""

    label: str
    text: str
    start: int
    end: int
    score: float


@dataclass(frozen=True)
class Prediction:
    """The most probable label and its probability, every label's probability, for
    a multi-label version the labels at or above their thresholds (None otherwise), and
    for a token-classification version the entities (None otherwise)."""

    label: str
    score: float
    scores: dict[str, float]
    labels: list[str] | None = None
    entities: list[Entity] | None = None


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)  # (batch, n_labels)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Each label's probability on its own (multi-label), without overflow."""
    return np.exp(-np.logaddexp(0.0, -logits))  # (batch, n_labels)


def length_groups(lengths: list[int]) -> list[list[int]]:
    """Indices grouped by similar length, shortest first (each group is padded alone)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    groups: list[list[int]] = []
    for i in order:
        if groups and lengths[i] <= lengths[groups[-1][0]] * _GROUP_RATIO + _GROUP_SLACK:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


class OnnxClassifier:
    """A verified registry version, ready to classify: `predict(texts) -> predictions`."""

    def __init__(self, version_dir: Path, manifest: Manifest, session: ort.InferenceSession,
                 encoder: TextEncoder) -> None:
        self.version_dir = Path(version_dir)
        self.manifest = manifest
        self.session = session
        self.encoder = encoder
        self.labels = list(manifest.labels)
        self._output = session.get_outputs()[0].name
        multi_label = manifest.label_setup == "multi-label"
        self._probabilities = sigmoid if multi_label else softmax
        self._thresholds = np.asarray(manifest.thresholds) if multi_label else None

    @classmethod
    def load(
        cls,
        version_dir: Path,
        providers: ProviderChoice = "auto",
        threads: int = 0,
        allow_spinning: bool = False,
    ) -> OnnxClassifier:
        """Verify the version's checksums, then build the session and the encoder (see
        `inference.open_session` for the threading options).

        Raises `registry.RegistryError` for a missing, corrupt or incomplete version.
        """
        version_dir = Path(version_dir)
        manifest = verify_version(version_dir)
        session = open_session(version_dir / manifest.model_file, providers, threads,
                               allow_spinning)
        n_out = session.get_outputs()[0].shape[-1]
        if isinstance(n_out, int) and n_out != len(manifest.labels):
            raise ValueError(
                f"{version_dir}: the model has {n_out} outputs but the manifest lists "
                f"{len(manifest.labels)} labels"
            )
        encoder = TextEncoder(version_dir / manifest.tokenizer_file, manifest.max_length,
                              [i.name for i in session.get_inputs()])
        cls.configure_encoder(encoder, manifest)
        return cls(version_dir, manifest, session, encoder)

    @staticmethod
    def configure_encoder(encoder: TextEncoder, manifest: Manifest) -> None:
        """What a task changes in how its texts are tokenized (nothing, for classifiers)."""

    def close(self) -> None:
        """Release the onnxruntime session and the tokenizer now, not whenever the garbage
        collector breaks the reference cycles around a loaded version: an unloaded
        version's native memory would otherwise linger, one model's worth per cycle."""
        self.session = None  # type: ignore[assignment]
        self.encoder = None  # type: ignore[assignment]

    @property
    def tokenizer(self) -> Tokenizer:
        return self.encoder.tokenizer

    @property
    def provider(self) -> str:
        return self.session.get_providers()[0]

    @property
    def model_bytes(self) -> int:
        return (self.version_dir / self.manifest.model_file).stat().st_size

    def predict(self, texts: list[str]) -> list[Prediction]:
        """Classify a batch; answers come back in input order, one per text."""
        if not texts:
            return []
        encodings = self.encoder.encode(texts)
        probs = np.empty((len(texts), len(self.labels)), dtype=np.float64)
        for group in length_groups([len(e.ids) for e in encodings]):
            feeds = self.encoder.feed([encodings[i] for i in group])
            (logits,) = self.session.run([self._output], feeds)  # (group, n_labels)
            probs[group] = self._probabilities(np.asarray(logits, dtype=np.float64))
        return [self._prediction(row) for row in probs]

    def _prediction(self, row: np.ndarray) -> Prediction:
        best = int(row.argmax())
        chosen = None
        if self._thresholds is not None:
            chosen = [label for label, on in zip(self.labels, row >= self._thresholds,
                                                 strict=True) if on]
        return Prediction(
            label=self.labels[best],
            score=float(row[best]),
            scores={label: float(p) for label, p in zip(self.labels, row, strict=True)},
            labels=chosen,
        )


def load_timed(
    version_dir: Path, providers: ProviderChoice, threads: int, allow_spinning: bool
) -> tuple[OnnxClassifier, float]:
    start = time.perf_counter()
    clf = OnnxClassifier.load(version_dir, providers, threads, allow_spinning)
    return clf, time.perf_counter() - start
