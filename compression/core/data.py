"""Labelled text datasets: TSV, CSV or JSONL files, or Hugging Face `datasets` names.

Every problem a user can make in a data file is reported as a one-line `DataError`
naming the file and, for a malformed row, the line.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from compression.core.errors import DataError

HF_PREFIX = "hf:"  # "hf:glue:sst2:train" -> datasets.load_dataset("glue", "sst2", split="train")


@dataclass(frozen=True)
class TextSplit:
    """One split: texts and their raw labels (as strings), in file order."""

    source: str
    texts: list[str]
    labels: list[str]

    def __len__(self) -> int:
        return len(self.texts)

    def head(self, n: int | None) -> TextSplit:
        if n is None or n >= len(self):
            return self
        return TextSplit(self.source, self.texts[:n], self.labels[:n])


@dataclass(frozen=True)
class LabelSpace:
    """Raw label values in a fixed order, with the display names that go in the manifest."""

    raw: tuple[str, ...]
    names: tuple[str, ...]

    @classmethod
    def from_train(cls, train: TextSplit, names: Mapping[str, str] | None = None) -> LabelSpace:
        values = set(train.labels)
        # Integers sort numerically (0, 1, 2, 10), anything else alphabetically.
        if all(v.lstrip("-").isdigit() for v in values):
            raw = tuple(sorted(values, key=int))
        else:
            raw = tuple(sorted(values))
        if len(raw) < 2:
            raise DataError(f"{train.source}: needs at least 2 distinct labels, found {list(raw)}")
        names = {str(k): str(v) for k, v in (names or {}).items()}
        unknown = set(names) - set(raw)
        if unknown:
            raise DataError(f"label_names names labels the data never has: {sorted(unknown)}")
        return cls(raw=raw, names=tuple(names.get(v, v) for v in raw))

    def encode(self, split: TextSplit) -> list[int]:
        index = {v: i for i, v in enumerate(self.raw)}
        out = []
        for row, label in enumerate(split.labels, start=1):
            if label not in index:
                raise DataError(
                    f"{split.source}: row {row} has label {label!r}, which the training data "
                    f"never has (known: {list(self.raw)})"
                )
            out.append(index[label])
        return out


def load_split(
    source: str | Path,
    text_column: str = "sentence",
    label_column: str = "label",
    limit: int | None = None,
) -> TextSplit:
    """Read a labelled split from a .tsv, .csv, .jsonl file or an `hf:` dataset name."""
    source = str(source)
    if source.startswith(HF_PREFIX):
        split = _load_hf(source[len(HF_PREFIX):], text_column, label_column)
    else:
        split = _load_file(Path(source), text_column, label_column)
    return split.head(limit)


def _load_file(path: Path, text_column: str, label_column: str) -> TextSplit:
    if not path.is_file():
        raise DataError(f"{path}: data file not found")
    suffix = path.suffix.lower()
    if suffix not in (".tsv", ".csv", ".jsonl", ".json"):
        raise DataError(f"{path}: unknown data format {suffix!r} (use .tsv, .csv or .jsonl)")
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            if suffix in (".jsonl", ".json"):
                rows = _jsonl_rows(path, handle)
            else:
                rows = _delimited_rows(path, handle, "\t" if suffix == ".tsv" else ",")
            texts, labels = _columns(path, rows, text_column, label_column)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    if not texts:
        raise DataError(f"{path}: no examples (the file is empty or has only a header)")
    return TextSplit(str(path), texts, labels)


def _delimited_rows(path: Path, handle, delimiter: str):  # type: ignore[no-untyped-def]
    # SST-2's text contains quotes that are not CSV quoting: read TSV without quoting.
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader(handle, delimiter=delimiter, quoting=quoting)
    header = next(reader, None)
    if header is None:
        raise DataError(f"{path}: the file is empty")
    for row in reader:
        line = reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise DataError(
                f"{path}: line {line} has {len(row)} fields, the header has {len(header)}"
            )
        yield line, dict(zip(header, row, strict=True))


def _jsonl_rows(path: Path, handle):  # type: ignore[no-untyped-def]
    for line, text in enumerate(handle, start=1):
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: line {line} is not valid JSON ({exc.msg})") from exc
        if not isinstance(row, dict):
            raise DataError(f"{path}: line {line} is not a JSON object")
        yield line, row


def _columns(path: Path, rows, text_column: str, label_column: str):  # type: ignore[no-untyped-def]
    texts: list[str] = []
    labels: list[str] = []
    for line, row in rows:
        if text_column not in row:
            raise DataError(
                f"{path}: no text column {text_column!r} (line {line} has {sorted(row)}); "
                "set --text-column"
            )
        if label_column not in row:
            raise DataError(
                f"{path}: no label column {label_column!r} (line {line} has {sorted(row)}); "
                "set --label-column"
            )
        text, label = row[text_column], row[label_column]
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{path}: line {line} has an empty or non-text {text_column!r}")
        if label is None or str(label).strip() == "":
            raise DataError(f"{path}: line {line} has no label")
        texts.append(text)
        labels.append(str(label).strip())
    return texts, labels


def _load_hf(spec: str, text_column: str, label_column: str) -> TextSplit:
    """`path:split` or `path:config:split` (e.g. `glue:sst2:train`), loaded with the
    `datasets` library, which needs a network."""
    try:
        import datasets  # optional dependency
    except ImportError as exc:
        raise DataError("hf: datasets need the 'datasets' package: pip install datasets") from exc
    parts = spec.split(":")
    if len(parts) not in (2, 3):
        raise DataError(f"hf:{spec}: write hf:PATH:SPLIT or hf:PATH:CONFIG:SPLIT")
    path, config, split = (parts[0], None, parts[1]) if len(parts) == 2 else parts
    try:
        ds = datasets.load_dataset(path, config, split=split)
    except Exception as exc:  # noqa: BLE001  (network, missing dataset: one line for the user)
        raise DataError(f"hf:{spec}: could not load ({type(exc).__name__}: {exc})") from exc
    missing = [c for c in (text_column, label_column) if c not in ds.column_names]
    if missing:
        raise DataError(f"hf:{spec}: no column(s) {missing} (has {ds.column_names})")
    return TextSplit(
        f"hf:{spec}", [str(t) for t in ds[text_column]], [str(v) for v in ds[label_column]]
    )


@dataclass(frozen=True)
class LabelledData:
    """A config's train and dev splits and the label space fixed by train."""

    train: TextSplit
    dev: TextSplit
    labels: LabelSpace


class DataSource(Protocol):
    """Where a config's data lives (`config.steps.DataConfig` is one)."""

    train: str
    dev: str
    text_column: str
    label_column: str
    label_names: Mapping[str, str]
    limit_train: int | None
    limit_dev: int | None


def load_data(data: DataSource) -> LabelledData:
    """Read `data`'s train and dev splits; fails early on a dev label train never had."""
    train = load_split(data.train, data.text_column, data.label_column, data.limit_train)
    dev = load_split(data.dev, data.text_column, data.label_column, data.limit_dev)
    labels = LabelSpace.from_train(train, data.label_names)
    labels.encode(dev)
    return LabelledData(train, dev, labels)
