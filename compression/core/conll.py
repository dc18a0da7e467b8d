"""Reading token-tagged sentences (named entities): the CoNLL column format and JSONL.

CoNLL: one token a line, the token in the first column and its tag in the last, columns
separated by spaces or tabs; a blank line or a `-DOCSTART-` line ends a sentence.
JSONL: one sentence a line, `{"tokens": [...], "tags": [...]}`.
Tags are IOB2 or IOB1 (`O`, `B-TYPE`, `I-TYPE`); IOB1 is rewritten as IOB2 on read
(`inference.entities.to_iob2`), so both give the same spans.

A sentence is held as a `TokenSplit` row: its tokens joined by single spaces (the text a
tokenizer reads) and its tags joined by spaces (the raw label cell `core.tags.TagSpace`
encodes). Every problem is a one-line `DataError` naming the file and the line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compression.core.errors import DataError
from compression.core.readers import TextSplit
from inference.entities import is_tag, to_iob2

FORMATS = ("conll", "jsonl")
DOCSTART = "-DOCSTART-"


@dataclass(frozen=True)
class TokenSplit(TextSplit):
    """A `TextSplit` of sentences, with the line each sentence starts on (for errors)."""

    lines: list[int] = field(default_factory=list)

    def head(self, n: int | None) -> TokenSplit:
        if n is None or n >= len(self):
            return self
        return TokenSplit(self.source, self.texts[:n], self.labels[:n], self.lines[:n])

    def pick(self, rows: list[int], source: str) -> TokenSplit:
        return TokenSplit(source, [self.texts[i] for i in rows], [self.labels[i] for i in rows],
                          [self.lines[i] for i in rows])

    def words(self, row: int) -> list[str]:
        return self.texts[row].split(" ")

    def tags(self, row: int) -> list[str]:
        return self.labels[row].split(" ")


def format_of(path: str | Path, declared: str | None = None) -> str:
    """`declared`, else from the suffix: .jsonl/.json is JSONL, anything else CoNLL."""
    if declared is not None:
        if declared not in FORMATS:
            raise DataError(f"{path}: unknown token data format {declared!r}; choose from "
                            f"{list(FORMATS)}")
        return declared
    return "jsonl" if Path(path).suffix.lower() in (".jsonl", ".json") else "conll"


def load_token_split(source: str | Path, data_format: str | None = None,
                     limit: int | None = None) -> TokenSplit:
    """Read a file of tagged sentences (CoNLL columns or JSONL), tags as IOB2."""
    path = Path(source)
    if not path.is_file():
        raise DataError(f"{path}: data file not found")
    kind = format_of(path, data_format)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    rows = _conll_sentences(path, text) if kind == "conll" else _jsonl_sentences(path, text)
    split = TokenSplit(str(path), [], [], [])
    for line, tokens, tags in rows:
        _check_sentence(path, line, tokens, tags)
        split.texts.append(" ".join(tokens))
        split.labels.append(" ".join(to_iob2(tags)))
        split.lines.append(line)
    if not split.texts:
        raise DataError(f"{path}: no sentences (the file is empty)")
    return split.head(limit)


def _check_sentence(path: Path, line: int, tokens: list[str], tags: list[str]) -> None:
    if not tokens:
        raise DataError(f"{path}: line {line}: an empty sentence (no tokens)")
    for token, tag in zip(tokens, tags, strict=True):
        if not token or any(c.isspace() for c in token):
            raise DataError(f"{path}: line {line}: token {token!r} is empty or holds a space")
        if not is_tag(tag):
            raise DataError(f"{path}: line {line}: tag {tag!r} is not O, B-TYPE or I-TYPE")


def _conll_sentences(path: Path, text: str):  # type: ignore[no-untyped-def]
    """(first line, tokens, tags) per sentence of a CoNLL column file."""
    tokens: list[str] = []
    tags: list[str] = []
    start = 0
    for number, line in enumerate(text.splitlines(), start=1):
        columns = line.split()
        if not columns or columns[0] == DOCSTART:
            if tokens:
                yield start, tokens, tags
            tokens, tags = [], []
            continue
        if len(columns) < 2:
            raise DataError(f"{path}: line {number} has one column; a token line needs the "
                            "token first and its tag last")
        if not is_tag(columns[-1]):  # checked here, where the line number is exact
            raise DataError(f"{path}: line {number}: tag {columns[-1]!r} is not O, B-TYPE "
                            "or I-TYPE")
        start = start if tokens else number
        tokens.append(columns[0])
        tags.append(columns[-1])
    if tokens:
        yield start, tokens, tags


def _jsonl_sentences(path: Path, text: str):  # type: ignore[no-untyped-def]
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row: Any = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: line {number} is not valid JSON ({exc.msg})") from exc
        if not isinstance(row, dict) or not all(
                isinstance(row.get(k), list) for k in ("tokens", "tags")):
            raise DataError(f"{path}: line {number} needs lists \"tokens\" and \"tags\"")
        tokens, tags = [str(t) for t in row["tokens"]], [str(t) for t in row["tags"]]
        if len(tokens) != len(tags):
            raise DataError(f"{path}: line {number} has {len(tokens)} tokens but "
                            f"{len(tags)} tags")
        yield number, tokens, tags
