"""Entity-level precision, recall and F1 in numpy, as the CoNLL script and seqeval's
default count them: an entity is right when its type and its exact span (first and last
word) are right; a stray `I-` starts an entity (`inference.entities.tag_spans`)."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

import numpy as np

from inference.entities import continuation, tag_spans

IGNORED = -100  # the label of a position that is not scored (a later sub-token, [CLS])


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    return np.divide(numerator, denominator, out=np.zeros(np.shape(numerator), dtype=float),
                     where=denominator > 0)


def entity_metrics(gold: Sequence[list[str]], predicted: Sequence[list[str]]
                   ) -> dict[str, float]:
    """Micro-averaged `precision`, `recall` and `micro_f1` over all entities, `macro_f1`
    (the mean F1 of the types present in gold or predictions) and `f1_<TYPE>`,
    `precision_<TYPE>`, `recall_<TYPE>` per type; one tag list per sentence each."""
    found: set[tuple[int, str, int, int]] = set()
    wanted: set[tuple[int, str, int, int]] = set()
    for row, (gold_tags, predicted_tags) in enumerate(zip(gold, predicted, strict=True)):
        wanted.update((row, *span) for span in tag_spans(list(gold_tags)))
        found.update((row, *span) for span in tag_spans(list(predicted_tags)))
    kinds = sorted({e[1] for e in wanted | found})
    right = found & wanted
    tp = np.array([sum(1 for e in right if e[1] == k) for k in kinds], dtype=float)
    n_found = np.array([sum(1 for e in found if e[1] == k) for k in kinds], dtype=float)
    n_wanted = np.array([sum(1 for e in wanted if e[1] == k) for k in kinds], dtype=float)
    precision, recall = _ratio(tp, n_found), _ratio(tp, n_wanted)
    f1 = _ratio(2 * tp, n_found + n_wanted)
    out = {
        "precision": float(_ratio(tp.sum(), n_found.sum())),
        "recall": float(_ratio(tp.sum(), n_wanted.sum())),
        "micro_f1": float(_ratio(2 * tp.sum(), n_found.sum() + n_wanted.sum())),
        "macro_f1": float(f1.mean()) if kinds else 0.0,
    }
    for i, kind in enumerate(kinds):
        out.update({f"precision_{kind}": float(precision[i]),
                    f"recall_{kind}": float(recall[i]), f"f1_{kind}": float(f1[i])})
    return out


def tag_rows(answers: np.ndarray, labels: np.ndarray, tags: Sequence[str]
             ) -> tuple[list[list[str]], list[list[str]]]:
    """(gold, predicted) tag names per row, at the scored positions (labels not IGNORED)."""
    gold, predicted = [], []
    for row_answers, row_labels in zip(answers, labels, strict=True):
        scored = np.asarray(row_labels) != IGNORED  # (seq,)
        gold.append([tags[int(i)] for i in np.asarray(row_labels)[scored]])
        predicted.append([tags[int(i)] for i in np.asarray(row_answers)[scored]])
    return gold, predicted


def align_labels(text: str, word_tags: list[int], word_ids: Sequence[int | None],
                 offsets: Sequence[tuple[int, int]], tags: Sequence[str]) -> list[int]:
    """Per token position of one encoded sentence (`text`: its words joined by single
    spaces, `word_tags` a tag index per word): the tag at the first sub-token of each of
    the tokenizer's words, IGNORED elsewhere (later sub-tokens, special tokens). A data
    word the tokenizer splits in several ("U.S." -> U . S .) tags its first piece with
    the word's tag and the others as inside its entity (`continuation`), as the service
    reads them."""
    starts, position = [], 0
    for word in text.split(" "):
        starts.append(position)
        position += len(word) + 1
    index = {t: i for i, t in enumerate(tags)}
    out, previous = [], None
    for word_id, (start, _) in zip(word_ids, offsets, strict=True):
        if word_id is None or word_id == previous:
            out.append(IGNORED)
        else:
            word = bisect_right(starts, start) - 1
            tag = tags[word_tags[word]]
            out.append(index[tag] if start == starts[word] else index[continuation(tag)])
        previous = word_id
    return out
