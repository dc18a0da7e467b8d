"""The tag space of a token classifier: `O`, then per entity type its `B-` and `I-`
tags, types alphabetically (or a label list file's order). Each `B-X` brings its `I-X`:
a word the tokenizer splits into several words continues its entity (`I-X`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from compression.core.errors import DataError
from compression.core.labels import LabelSpace, read_label_list
from compression.core.readers import TextSplit
from inference.entities import OUTSIDE, split_tag, tag_spans


def complete_tags(tags: set[str]) -> tuple[str, ...]:
    """O, then B- and I- of each type, types sorted."""
    kinds = sorted({split_tag(t)[1] for t in tags if t != OUTSIDE})
    return (OUTSIDE, *[f"{p}-{k}" for k in kinds for p in ("B", "I")])


@dataclass(frozen=True)
class TagSpace(LabelSpace):
    """A `LabelSpace` whose raw label cell is a sentence's tags joined by spaces, encoded
    as a list of tag indices (one per word)."""

    multi_label: ClassVar[bool] = False

    @classmethod
    def from_train(cls, train: TextSplit, names: Mapping[str, str] | None = None,
                   labels_file: str | Path | None = None) -> TagSpace:
        if names:
            raise DataError("label_names: not for token-classification (tags are their names)")
        if labels_file is None:
            raw = complete_tags({t for cell in train.labels for t in cls.row_labels(cell)})
            if len(raw) < 3:
                raise DataError(f"{train.source}: no entity tags (every tag is O)")
        else:
            raw = read_label_list(labels_file)
            if set(complete_tags(set(raw))) != set(raw):
                raise DataError(f"{labels_file}: a tag list needs O and both the B- and the "
                                "I- tag of each type")
        space = cls(raw=raw, names=raw, listed_in=None if labels_file is None
                    else str(labels_file))
        space.encode(train)
        return space

    @staticmethod
    def row_labels(cell: str) -> list[str]:
        return cell.split(" ")

    def encode(self, split: TextSplit) -> list[list[int]]:
        """Each sentence's tags as indices; a tag the space lacks is a `DataError` naming
        the file and the line its sentence starts on."""
        index = {t: i for i, t in enumerate(self.raw)}
        lines = getattr(split, "lines", None) or []
        out = []
        for row, cell in enumerate(split.labels):
            tags = self.row_labels(cell)
            unknown = [t for t in tags if t not in index]
            if unknown:
                where = f"line {lines[row]}" if row < len(lines) else f"sentence {row + 1}"
                known = (f"which {self.listed_in} does not list" if self.listed_in
                         else "which the training data never has")
                raise DataError(f"{split.source}: {where}: tag {unknown[0]!r}, {known} "
                                f"(known: {list(self.raw)})")
            out.append([index[t] for t in tags])
        return out

    @classmethod
    def strata(cls, split: TextSplit) -> list[str]:
        """A sentence's group, for a stratified dev split: its rarest entity type."""
        kinds = [[k for k, _, _ in tag_spans(cls.row_labels(cell))] for cell in split.labels]
        counts = Counter(k for row in kinds for k in row)
        return [min(row, key=lambda k: (counts[k], k)) if row else "" for row in kinds]
