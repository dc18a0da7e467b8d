"""Data augmentation for task distillation, after TinyBERT (Jiao et al. 2020, sec. 3.3).

A small student learns more from the teacher's soft targets when it sees more inputs
than the labelled set has. Each augmented sentence is a training sentence with some
whole words swapped for a near neighbour. TinyBERT takes its neighbours from GloVe and
BERT's masked-LM head. Neither is at hand offline, and a sentence-embedding encoder
has no masked-LM head. So the neighbours here are the teacher's own input embeddings,
nearest by cosine.

Neighbours can flip the meaning ("good" -> "bad"). That is why an augmented sentence
carries no hard label (`UNLABELLED`): only the teacher's outputs on it train the
student.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping

import torch

from compression.config.steps import AugmentConfig
from compression.training.losses import UNLABELLED

__all__ = ["UNLABELLED", "augment_texts", "augmented_texts_for", "word_neighbours"]


def _is_word(token: str) -> bool:
    # Whole alphabetic words only: no "##" pieces, no [CLS]-style specials, no digits.
    return token.isalpha() and token.isascii()


def word_neighbours(
    embeddings: torch.Tensor,
    vocab: Mapping[str, int],
    words: Iterable[str],
    candidates: int,
    chunk_size: int = 2048,
) -> dict[str, list[str]]:
    """For each of `words` found whole in `vocab`, its `candidates` nearest whole-word
    vocabulary entries by cosine between rows of `embeddings` (vocab_size, H), nearest
    first. Words not in the vocabulary, or not whole words, are left out."""
    pool_tokens = sorted(t for t in vocab if _is_word(t))
    pool = torch.nn.functional.normalize(
        embeddings[[vocab[t] for t in pool_tokens]].float(), dim=1)  # (P, H)
    queries = sorted({w for w in words if w in vocab and _is_word(w)})
    out: dict[str, list[str]] = {}
    # +1: a word is its own nearest; +2: its other-case forms in a cased vocabulary.
    k = min(candidates + 3, len(pool_tokens))
    for start in range(0, len(queries), chunk_size):
        chunk = queries[start : start + chunk_size]
        rows = torch.nn.functional.normalize(embeddings[[vocab[w] for w in chunk]].float(), dim=1)
        scores = rows @ pool.T  # (chunk, P)
        for word, top in zip(chunk, scores.topk(k, dim=1).indices.tolist(), strict=True):
            # A cased vocabulary's "Good" is no neighbour of "good": the swap changes nothing.
            near = [pool_tokens[i] for i in top if pool_tokens[i].lower() != word.lower()]
            out[word] = near[:candidates]
    return out


def augment_texts(
    texts: list[str], neighbours: Mapping[str, list[str]], config: AugmentConfig
) -> list[str]:
    """`config.copies` variants of every text, in order (all first copies, then all
    second copies...): each word with neighbours is replaced, with probability
    `config.replace_prob`, by one of them drawn uniformly. Words are split on white space,
    as in SST-2's pre-tokenized text ("good," is not the word "good"). A variant that came
    out unchanged gets one word replaced if it has any, so copies differ from their source."""
    rng = random.Random(config.seed)
    out: list[str] = []
    for _ in range(config.copies):
        for text in texts:
            words = text.split()
            # A word as written, else lowercased (an uncased vocabulary holds only those).
            keys = [w if w in neighbours else w.lower() for w in words]
            replaceable = [i for i, key in enumerate(keys) if neighbours.get(key)]
            chosen = [i for i in replaceable if rng.random() < config.replace_prob]
            if not chosen and replaceable:
                chosen = [rng.choice(replaceable)]
            for i in chosen:
                words[i] = rng.choice(neighbours[keys[i]])
            out.append(" ".join(words))
    return out


def augmented_texts_for(
    texts: list[str], embeddings: torch.Tensor, vocab: Mapping[str, int],
    config: AugmentConfig,
) -> list[str]:
    """Neighbours from `embeddings` for the words of `texts`, then `augment_texts`."""
    words = {form for text in texts for w in text.split() for form in (w, w.lower())}
    neighbours = word_neighbours(embeddings, vocab, words, config.candidates)
    return augment_texts(texts, neighbours, config)
