"""The official SQuAD v1.1 exact match and F1 (`evaluate-v1.1.py`), in plain Python.

An answer is normalised before it is compared: lower-cased, punctuation removed, the
articles a, an and the removed, whitespace collapsed. Exact match: the normalised texts
are equal. F1: over the normalised texts' word bags (word multiplicity counts). Each
question scores its best over its reference answers. The official script reports
percentages; these functions give fractions (0..1), as every other metric here.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """The official normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, reference: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(reference))


def f1_score(prediction: str, reference: str) -> float:
    predicted, wanted = normalize_answer(prediction).split(), normalize_answer(reference).split()
    common = Counter(predicted) & Counter(wanted)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(wanted)
    return 2 * precision * recall / (precision + recall)


def best_over(metric, prediction: str, references: Sequence[str]) -> float:  # type: ignore[no-untyped-def]
    """The official `metric_max_over_ground_truths`."""
    return max(metric(prediction, reference) for reference in references)


def squad_scores(predictions: Mapping[str, str],
                 references: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """`exact_match` and `f1` (fractions) of `predictions` (question id -> answer text)
    over every question of `references` (id -> its reference answers); a question
    without a prediction scores 0, as in the official script."""
    if not references:
        return {"exact_match": 0.0, "f1": 0.0}
    em = f1 = 0.0
    for key, answers in references.items():
        if key not in predictions:
            continue
        em += best_over(exact_match, predictions[key], answers)
        f1 += best_over(f1_score, predictions[key], answers)
    return {"exact_match": em / len(references), "f1": f1 / len(references)}
