"""A learnable toy extractive QA task for tiny models, in the SQuAD v1.1 JSON layout: the
answer to "what was good ?" is the one positive word among filler words."""

from __future__ import annotations

import json
import random
from pathlib import Path

from tiny_models import POSITIVE

FILLERS = ["the", "film", "movie", "story", "was", "very", "really", "it", "is", "this",
           "plot", "actor", "and", "not", "quite"]
QUESTION = "what was good ?"


def toy_paragraph(rng: random.Random, words: int) -> tuple[str, str, int]:
    """(context, answer, answer's character start): `words` filler words, one positive."""
    filler = [rng.choice(FILLERS) for _ in range(words)]
    at = rng.randint(0, words)
    answer = rng.choice(POSITIVE)
    context = " ".join(filler[:at] + [answer] + filler[at:])
    start = len(" ".join(filler[:at])) + (1 if at else 0)
    return context, answer, start


def toy_squad(n: int, seed: int = 0, words: tuple[int, int] = (4, 14)) -> dict:
    """`n` questions, one a paragraph, as a SQuAD v1.1 document."""
    rng = random.Random(seed)
    paragraphs = []
    for i in range(n):
        context, answer, start = toy_paragraph(rng, rng.randint(*words))
        paragraphs.append({"context": context, "qas": [{
            "id": f"q{seed}-{i}", "question": QUESTION,
            "answers": [{"text": answer, "answer_start": start}]}]})
    return {"version": "1.1", "data": [{"title": "toy", "paragraphs": paragraphs}]}


def write_toy_squad(path: Path, n: int, seed: int = 0,
                    words: tuple[int, int] = (4, 14)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(toy_squad(n, seed, words)))
    return path
