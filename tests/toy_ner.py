"""A separable toy NER task for tiny models: person names (PER) and places (LOC) among
filler words, in CoNLL columns."""

from __future__ import annotations

import random
from pathlib import Path

PEOPLE = [["anna", "bell"], ["carl"], ["dora", "eve"], ["fred"]]
PLACES = [["paris"], ["new", "york"], ["oslo"]]
FILLERS = ["the", "film", "was", "very", "it", "is", "this", "good", "in", "to"]


def toy_ner(n: int, seed: int = 0) -> list[list[tuple[str, str]]]:
    """`n` sentences, each a list of (word, IOB2 tag)."""
    rng = random.Random(seed)
    sentences = []
    for _ in range(n):
        words: list[tuple[str, str]] = [(w, "O") for w in rng.sample(FILLERS, 3)]
        for kind, names in (("PER", PEOPLE), ("LOC", PLACES)):
            if rng.random() < 0.7:
                name = rng.choice(names)
                entity = [(w, ("B-" if i == 0 else "I-") + kind) for i, w in enumerate(name)]
                at = rng.randint(0, len(words))
                words[at:at] = entity
        sentences.append(words)
    return sentences


def write_toy_conll(path: Path, n: int, seed: int = 0) -> Path:
    lines = ["-DOCSTART- -X- -X- O", ""]
    for sentence in toy_ner(n, seed):
        lines += [f"{word} NN O {tag}" for word, tag in sentence] + [""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path
