"""Reading labelled text: TSV, CSV or JSONL files, or Hugging Face `datasets` names, as
texts and raw label strings (a multi-label row's names joined by commas).

Every problem a user can make in a data file is reported as a one-line `DataError`
naming the file and, for a malformed row, the line.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

    def pick(self, rows: list[int], source: str) -> TextSplit:
        """The rows `rows` (indices, in that order), named `source`."""
        return TextSplit(source, [self.texts[i] for i in rows], [self.labels[i] for i in rows])


def load_split(
    source: str | Path,
    text_column: str = "sentence",
    label_column: str = "label",
    limit: int | None = None,
    multi_label: bool = False,
) -> TextSplit:
    """Read a labelled split from a .tsv, .csv, .jsonl file or an `hf:` dataset name.

    With `multi_label` a row's label cell holds comma-separated names (a JSON or `datasets`
    list is joined with commas) and may be empty: a text with no label."""
    source = str(source)
    if source.startswith(HF_PREFIX):
        split = _load_hf(source[len(HF_PREFIX):], text_column, label_column)
    else:
        split = _load_file(Path(source), text_column, label_column, multi_label)
    return split.head(limit)


def _load_file(path: Path, text_column: str, label_column: str,
               multi_label: bool) -> TextSplit:
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
            texts, labels = _columns(path, rows, text_column, label_column, multi_label)
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


def _label_text(label: Any) -> str:
    """A label cell as a string; a list (JSON, `datasets`) as its items joined by commas."""
    if isinstance(label, list | tuple):
        return ",".join(str(item).strip() for item in label)
    return "" if label is None else str(label).strip()


def _columns(path: Path, rows, text_column: str, label_column: str,  # type: ignore[no-untyped-def]
             multi_label: bool):
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
        if _label_text(label) == "" and not multi_label:
            raise DataError(f"{path}: line {line} has no label")
        texts.append(text)
        labels.append(_label_text(label))
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
        f"hf:{spec}", [str(t) for t in ds[text_column]], [_label_text(v) for v in ds[label_column]]
    )
