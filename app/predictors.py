"""Loading a registry version as the predictor its manifest's task calls for: a
sequence classifier (`classifier.OnnxClassifier`) or a token classifier
(`token_classifier.OnnxTokenClassifier`). The batcher and the HTTP layer only call
`predict(texts)`."""

from __future__ import annotations

import time
from pathlib import Path

from .classifier import OnnxClassifier, ProviderChoice
from .token_classifier import predictor_class

__all__ = ["load_predictor", "load_timed"]


def load_predictor(version_dir: Path, providers: ProviderChoice = "auto", threads: int = 0,
                   allow_spinning: bool = False) -> OnnxClassifier:
    return predictor_class(version_dir).load(version_dir, providers, threads, allow_spinning)


def load_timed(version_dir: Path, providers: ProviderChoice, threads: int,
               allow_spinning: bool) -> tuple[OnnxClassifier, float]:
    start = time.perf_counter()
    predictor = load_predictor(version_dir, providers, threads, allow_spinning)
    return predictor, time.perf_counter() - start
