"""Defaults that scale with the training data, each one small rule in one place.

A number tuned on SST-2's 67k sentences is wrong for a 5k-sentence set: a vocabulary
`min_count` of 7 keeps a tenth as many tokens, 3 epochs are a tenth as many updates.
These rules turn a setting into one for the data at hand, when the step that needs it
knows the training set's size (docs/config.md, "Defaults that scale with the data").
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from compression.config.steps import AUTO, TrainConfig
from compression.core.errors import ConfigError

__all__ = ["AUTO", "CALIBRATION_SENTENCES", "MAX_EPOCHS", "MIN_EPOCHS", "TARGET_UPDATES",
           "calibration_size", "calibration_size_for", "check_coverage", "epochs_for",
           "resolve_epochs"]

# About 3000 optimiser updates: what stable fine-tuning of BERT-sized encoders on small
# sets takes (Mosbach et al. 2021 train RTE's 2.5k rows for 20 epochs at batch 16, about
# 3100 updates, where the usual 3 epochs often fail; Zhang et al. 2021 likewise find the
# usual recipes too short for small sets). SST-2's students trained 3 epochs, ~6300.
TARGET_UPDATES = 3000
# At least 2 epochs: the best of two per-epoch evaluations is kept, and one pass over a
# large set is not yet the end of its linear schedule's useful part. At most 10: past that
# a small set is memorised, and its small dev split picking among more epochs picks noise.
MIN_EPOCHS, MAX_EPOCHS = 2, 10
# Static quantization calibrates activation ranges: a statistic of the activations whose
# error depends on how many sentences are seen, not on how many the set holds, so the
# count stays fixed (capped by the set). 512 sentences (~10k tokens a tensor) is the
# count every shipped model was calibrated with.
CALIBRATION_SENTENCES = 512


def epochs_for(n_train: int, batch_size: int) -> int:
    """Whole epochs for about TARGET_UPDATES optimiser steps over `n_train` rows at
    `batch_size`, clamped to [MIN_EPOCHS, MAX_EPOCHS]: SST-2's 67,349 rows at batch 32
    (2,105 steps an epoch) train 2 epochs, a 5,400-row set (169 steps) 10."""
    if n_train < 1 or batch_size < 1:
        raise ConfigError(f"epochs: auto needs a training set and a batch size; got "
                          f"{n_train} rows at batch {batch_size}")
    steps_per_epoch = math.ceil(n_train / batch_size)
    return min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(TARGET_UPDATES / steps_per_epoch)))


def resolve_epochs(train: TrainConfig, n_train: int | None) -> TrainConfig:
    """`train` with `epochs: auto` replaced by `epochs_for(n_train, batch_size)`; a
    numeric `epochs` is returned untouched (same object, same digest)."""
    if train.epochs != AUTO:
        return train
    if n_train is None:
        raise ConfigError("epochs: auto is resolved from the training set's size, which "
                          "this caller did not give")
    return replace(train, epochs=float(epochs_for(n_train, train.batch_size)))


def calibration_size_for(n_train: int) -> int:
    """Calibration sentences for a training set of `n_train` rows: CALIBRATION_SENTENCES,
    or every row of a smaller set. The same as the fixed default of 512 for every set."""
    return max(1, min(n_train, CALIBRATION_SENTENCES))


def calibration_size(value: int | str, n_train: int) -> int:
    """`evaluate.calibration_size` for the data: an explicit count, or `auto`."""
    return calibration_size_for(n_train) if value == AUTO else int(value)


def check_coverage(value: Any, where: str = "coverage") -> float:
    """A vocabulary coverage: a number in (0, 1] (a share of the training texts' token
    occurrences), as a float; ConfigError otherwise (NaN, a bool, a string)."""
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or math.isnan(value) or not 0 < value <= 1:
        raise ConfigError(f"{where}: use a fraction of token occurrences in (0, 1], "
                          f"e.g. 0.995; got {value!r}")
    return float(value)
