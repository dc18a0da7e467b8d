"""Labelled text datasets: a config's train and dev splits and their label space.

Reading files is `core.readers`, label order and encoding `core.labels`; this module
puts them together and, when there is no dev file, carves a stratified dev split out of
the training data. Every problem a user can make in a data file is a one-line `DataError`.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from compression.core.conll import load_token_split
from compression.core.errors import DataError
from compression.core.labels import LabelSpace, MultiLabelSpace
from compression.core.readers import HF_PREFIX, TextSplit, load_split
from compression.core.squad import SpanSpace, load_squad_split
from compression.core.tags import TagSpace

__all__ = ["HF_PREFIX", "DataSource", "LabelSpace", "LabelledData", "MultiLabelSpace",
           "TextSplit", "carve_dev", "load_data", "load_split"]


@dataclass(frozen=True)
class LabelledData:
    """A config's train and dev splits and the label space fixed by train."""

    train: TextSplit
    dev: TextSplit
    labels: LabelSpace


class DataSource(Protocol):
    """Where a config's data lives (`config.steps.DataConfig` is one)."""

    train: str
    dev: str | None
    text_column: str
    label_column: str
    label_names: Mapping[str, str]
    limit_train: int | None
    limit_dev: int | None
    dev_fraction: float | None
    dev_seed: int
    multi_label: bool
    labels_file: str | None


def carve_dev(train: TextSplit, strata: list[str], fraction: float,
              seed: int) -> tuple[TextSplit, TextSplit]:
    """`train` split in two, (train, dev), stratified: from each group of `strata` (one
    per row) `fraction` of the rows, rounded, go to dev, at least one from a group of two
    or more rows and never a group's last row. Which rows is drawn from `seed`; both
    parts keep the file's order."""
    groups: dict[str, list[int]] = defaultdict(list)
    for row, group in enumerate(strata):
        groups[group].append(row)
    rng = random.Random(seed)
    dev_rows: list[int] = []
    for group in sorted(groups):
        rows = groups[group]
        if len(rows) < 2:
            continue
        rng.shuffle(rows)
        dev_rows += rows[: min(max(round(len(rows) * fraction), 1), len(rows) - 1)]
    chosen = set(dev_rows)
    if not chosen or len(chosen) == len(train):
        raise DataError(f"{train.source}: too few rows to carve a dev split of "
                        f"{fraction:g} from")
    name = f"{train.source} (dev_fraction {fraction:g}, dev_seed {seed})"
    return (train.pick([i for i in range(len(train)) if i not in chosen], f"{name}: train"),
            train.pick(sorted(chosen), f"{name}: dev"))


TOKEN_TASK = "token-classification"  # DataConfig.task of tagged sentences (core.conll)
QA_TASK = "question-answering"  # DataConfig.task of SQuAD-layout questions (core.squad)


def _reader(data: DataSource) -> tuple[type[LabelSpace], Callable[[str, int | None], TextSplit]]:
    """The label space and the split reader a data config calls for."""
    if getattr(data, "task", None) == QA_TASK:
        return SpanSpace, lambda source, limit: load_squad_split(source, limit)
    if getattr(data, "task", None) == TOKEN_TASK:
        return TagSpace, lambda source, limit: load_token_split(
            source, getattr(data, "format", None), limit)
    kind = MultiLabelSpace if data.multi_label else LabelSpace
    return kind, lambda source, limit: load_split(source, data.text_column, data.label_column,
                                                  limit, data.multi_label)


def load_data(data: DataSource) -> LabelledData:
    """Read `data`'s train and dev splits (dev carved from train when `dev_fraction` is
    set) and fix the label space by train (or `labels_file`); fails early on a dev label
    the space lacks. Token classification (`task`) reads tagged sentences (`core.conll`)."""
    kind, read = _reader(data)
    train = read(data.train, None)
    if data.dev_fraction is not None:
        train, dev = carve_dev(train, kind.strata(train), data.dev_fraction, data.dev_seed)
        dev = dev.head(data.limit_dev)
    elif data.dev is not None:
        dev = read(data.dev, data.limit_dev)
    else:
        raise DataError("no dev data: give a dev file or dev_fraction")
    train = train.head(data.limit_train)
    labels = kind.from_train(train, data.label_names, data.labels_file)
    labels.encode(dev)
    return LabelledData(train, dev, labels)
