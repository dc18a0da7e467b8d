"""Label spaces: the order of a head's labels, fixed by the training data or by a label
list file, and the encoding of a split's raw labels for training.

Single-label (`LabelSpace`): one raw value a row, encoded as its index. Multi-label
(`MultiLabelSpace`): comma-separated names a row (none, one or several), encoded as a
multi-hot row. A label a split has and the space lacks is a one-line `DataError`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from compression.core.errors import DataError
from compression.core.readers import TextSplit

SEPARATOR = ","  # between the names of a multi-label row


def read_label_list(path: str | Path) -> tuple[str, ...]:
    """The labels of a label list file, one a line, in its order (blank lines skipped)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: label list file not found")
    names = tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines()
                  if line.strip())
    repeated = sorted(name for name, n in Counter(names).items() if n > 1)
    if repeated:
        raise DataError(f"{path}: lists {repeated} more than once")
    if len(names) < 2:
        raise DataError(f"{path}: needs at least 2 labels, one a line; found {list(names)}")
    return names


def _sorted(values: set[str]) -> tuple[str, ...]:
    """Integers numerically (0, 1, 2, 10), anything else alphabetically."""
    if all(v.lstrip("-").isdigit() for v in values):
        return tuple(sorted(values, key=int))
    return tuple(sorted(values))


@dataclass(frozen=True)
class LabelSpace:
    """Raw label values in a fixed order, with the display names that go in the manifest.
    `listed_in` is the label list file that fixed them (None: the training data did)."""

    raw: tuple[str, ...]
    names: tuple[str, ...]
    listed_in: str | None = None

    multi_label: ClassVar[bool] = False

    @classmethod
    def from_train(cls, train: TextSplit, names: Mapping[str, str] | None = None,
                   labels_file: str | Path | None = None) -> LabelSpace:
        """The space of `train`'s labels, or of `labels_file`'s (which must then name
        every label `train` has)."""
        if labels_file is None:
            raw = _sorted({label for cell in train.labels for label in cls.row_labels(cell)})
            if len(raw) < 2:
                raise DataError(f"{train.source}: needs at least 2 distinct labels, found "
                                f"{list(raw)}")
        else:
            raw = read_label_list(labels_file)
        names = {str(k): str(v) for k, v in (names or {}).items()}
        unknown = set(names) - set(raw)
        if unknown:
            raise DataError(f"label_names names labels the data never has: {sorted(unknown)}")
        space = cls(raw=raw, names=tuple(names.get(v, v) for v in raw),
                    listed_in=None if labels_file is None else str(labels_file))
        if labels_file is not None:
            space.encode(train)  # every training label must be listed
        return space

    @staticmethod
    def row_labels(cell: str) -> list[str]:
        """The labels of one row's raw label cell."""
        return [cell]

    def encode(self, split: TextSplit) -> list[Any]:
        """Each row's label as the model is trained on it."""
        index = {v: i for i, v in enumerate(self.raw)}
        out = []
        for row, cell in enumerate(split.labels, start=1):
            labels = self.row_labels(cell)
            for label in labels:
                if label not in index:
                    known = (f"which {self.listed_in} does not list" if self.listed_in
                             else "which the training data never has")
                    raise DataError(f"{split.source}: row {row} has label {label!r}, {known} "
                                    f"(known: {list(self.raw)})")
            out.append(self.encode_row([index[label] for label in labels]))
        return out

    def encode_row(self, indices: list[int]) -> Any:
        return indices[0]

    @classmethod
    def strata(cls, split: TextSplit) -> list[str]:
        """A group per row, for a stratified dev split: its label."""
        return list(split.labels)


@dataclass(frozen=True)
class MultiLabelSpace(LabelSpace):
    """Each row holds any number of the labels (comma-separated names); a row is encoded
    as a multi-hot list of floats, 1.0 for each label it has."""

    multi_label: ClassVar[bool] = True

    @staticmethod
    def row_labels(cell: str) -> list[str]:
        return list(dict.fromkeys(n.strip() for n in cell.split(SEPARATOR) if n.strip()))

    def encode_row(self, indices: list[int]) -> list[float]:
        row = [0.0] * len(self.raw)
        for i in indices:
            row[i] = 1.0
        return row

    @classmethod
    def strata(cls, split: TextSplit) -> list[str]:
        """A row's group is its rarest label in `split` (the empty group: no label), so a
        stratified dev split holds the rare labels where it can."""
        rows = [cls.row_labels(cell) for cell in split.labels]
        counts = Counter(label for labels in rows for label in labels)
        return [min(labels, key=lambda x: (counts[x], x)) if labels else "" for labels in rows]


def label_space(train: TextSplit, names: Mapping[str, str] | None = None,
                labels_file: str | Path | None = None,
                multi_label: bool = False) -> LabelSpace:
    """The single- or multi-label space of `train`."""
    kind = MultiLabelSpace if multi_label else LabelSpace
    return kind.from_train(train, names, labels_file)
