"""Entities from IOB tags: what training data, entity metrics and the service share.

Tags are `O`, `B-TYPE` or `I-TYPE`. Spans are read as the CoNLL script and seqeval's
default read them: `B-X` starts an entity, `I-X` continues an `X` entity and starts one
after anything else (a stray `I-` starts an entity), `O` ends one. IOB1 files (where `B-`
only separates two adjacent entities of one type) read as the same spans, and
`to_iob2` rewrites them in IOB2, the scheme the models learn.
"""

from __future__ import annotations

OUTSIDE = "O"


def split_tag(tag: str) -> tuple[str, str]:
    """(prefix, type) of a tag: ("B", "PER"), ("I", "LOC"), ("O", "")."""
    if tag == OUTSIDE:
        return OUTSIDE, ""
    prefix, _, kind = tag.partition("-")
    if prefix not in ("B", "I") or not kind:
        raise ValueError(f"tag {tag!r} is not O, B-TYPE or I-TYPE")
    return prefix, kind


def is_tag(tag: str) -> bool:
    try:
        split_tag(tag)
    except ValueError:
        return False
    return True


def tag_spans(tags: list[str]) -> list[tuple[str, int, int]]:
    """The entities of one sentence's tags as (type, first word, end word exclusive)."""
    spans: list[tuple[str, int, int]] = []
    kind, start = "", -1
    for i, tag in enumerate(tags):
        prefix, tag_kind = split_tag(tag)
        continues = prefix == "I" and tag_kind == kind and start >= 0
        if continues:
            continue
        if start >= 0:
            spans.append((kind, start, i))
        kind, start = (tag_kind, i) if prefix != OUTSIDE else ("", -1)
    if start >= 0:
        spans.append((kind, start, len(tags)))
    return spans


def to_iob2(tags: list[str]) -> list[str]:
    """The same spans in IOB2: every entity starts with `B-` (IOB1's and a stray `I-`
    that starts an entity become `B-`); IOB2 tags come back unchanged."""
    out = [OUTSIDE] * len(tags)
    for kind, start, end in tag_spans(tags):
        out[start] = f"B-{kind}"
        for i in range(start + 1, end):
            out[i] = f"I-{kind}"
    return out


def continuation(tag: str) -> str:
    """The tag of a later piece of a word tagged `tag`: inside its entity, or O."""
    prefix, kind = split_tag(tag)
    return OUTSIDE if prefix == OUTSIDE else f"I-{kind}"
