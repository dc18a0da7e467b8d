"""Which tokens a pruned vocabulary keeps (`pruning.vocabulary`): how often the training
texts use each token, and the count threshold, `min_count` or the one that keeps a given
`coverage` of those uses.

A `coverage` of 0.995 keeps the most frequent tokens until they make up 99.5 % of the
training texts' token occurrences. Unlike a fixed `min_count`, it means the same on a
5k-sentence set as on SST-2's 67k: 7 uses in SST-2 are as rare as 0.6 in a set 12 times
smaller, so `min_count: 7` keeps far fewer of a small set's tokens.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tokenizers import Tokenizer

from compression.config.scaling import check_coverage
from compression.core.errors import ConfigError
from compression.pruning.tokenizer_models import (
    char_piece_ids,
    special_tokens,
    tokenizer_model,
    vocab_of,
)

__all__ = ["KeptTokens", "bare_tokenizer", "check_threshold", "count_threshold",
           "covered_share", "select_tokens", "token_counts", "unk_fraction"]


def bare_tokenizer(data: dict[str, Any]) -> Tokenizer:
    """The tokenizer without truncation or padding, so every token of a text is seen."""
    tokenizer = Tokenizer.from_str(json.dumps(data))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def token_counts(data: dict[str, Any], texts: list[str],
                 special: Collection[int] = ()) -> Counter[int]:
    """Occurrences of each token id when the tokenizer `data` (tokenizer.json) encodes
    `texts` with its special tokens, the ids in `special` left out."""
    counts: Counter[int] = Counter()
    for encoding in bare_tokenizer(data).encode_batch(texts, add_special_tokens=True):
        counts.update(encoding.ids)
    for token_id in special:
        counts.pop(token_id, None)
    return counts


def covered_share(counts: Mapping[int, int], kept: Collection[int]) -> float:
    """The share of all occurrences in `counts` that are of a `kept` id (1.0 when there
    are none)."""
    total = sum(counts.values())
    return sum(n for i, n in counts.items() if i in kept) / total if total else 1.0


def count_threshold(counts: Mapping[int, int], coverage: float) -> int:
    """The largest count t such that the tokens used at least t times make up at least
    `coverage` of all occurrences: the most frequent tokens until they cover that share,
    the tokens tied with the last one kept with it (so the choice does not depend on an
    order among equals). 1 (every seen token) when `counts` is empty."""
    total = sum(counts.values())
    covered = 0
    for count, tokens in sorted(Counter(counts.values()).items(), reverse=True):
        covered += count * tokens
        if covered / total >= coverage:
            return count
    return 1


def unk_fraction(tokenizer: Tokenizer, texts: list[str], unk: str | None) -> float:
    """Share of the texts' tokens that are `unk` (0 for a vocabulary without one)."""
    unk_id = None if unk is None else tokenizer.token_to_id(unk)
    ids = [i for e in tokenizer.encode_batch(texts, add_special_tokens=False) for i in e.ids]
    return sum(i == unk_id for i in ids) / len(ids) if ids and unk_id is not None else 0.0


def check_threshold(min_count: int, coverage: float | None) -> float | None:
    """`coverage` checked (None: not given); ConfigError for a `min_count` below 1, a
    coverage outside (0, 1], or both (coverage chooses the count itself)."""
    if min_count < 1:
        raise ConfigError(f"min_count must be >= 1, got {min_count}")
    if coverage is None:
        return None
    if min_count != 1:
        raise ConfigError(f"give min_count ({min_count}) or coverage ({coverage}), not both: "
                          "coverage chooses the count threshold itself")
    return check_coverage(coverage)


@dataclass(frozen=True)
class KeptTokens:
    """What `select_tokens` keeps: the sorted original ids, the count threshold the
    seen tokens passed (`min_count`, or the one `coverage` chose) and the share of the
    texts' token occurrences (special tokens aside) that the kept ids make up."""

    ids: list[int]
    count_threshold: int
    coverage_achieved: float


def select_tokens(data: dict[str, Any], texts: list[str], keep_chars: bool = True,
                  extra_tokens: Iterable[str] = (), min_count: int = 1,
                  coverage: float | None = None) -> KeptTokens:
    """`pruning.vocabulary.kept_token_ids` for a tokenizer.json dict and non-blank texts,
    with the threshold it used and the coverage it reached."""
    coverage = check_threshold(min_count, coverage)
    vocab = vocab_of(data)
    required, special = special_tokens(data)
    missing = [t for t in required if t not in vocab]
    if missing:
        raise ConfigError(f"the tokenizer's vocabulary lacks the special token(s) {missing}; "
                          "pruning would leave no id for them")
    counts = token_counts(data, texts, special)  # special tokens are kept anyway
    threshold = min_count if coverage is None else count_threshold(counts, coverage)
    keep = {i for i, n in counts.items() if n >= threshold} | special
    if keep_chars:
        keep.update(char_piece_ids(data))
    unknown = [t for t in extra_tokens if t not in vocab]
    if unknown:
        raise ConfigError(f"extra tokens not in the vocabulary: {unknown[:10]}")
    keep.update(vocab[t] for t in extra_tokens)
    kept = sorted(tokenizer_model(data).closure(data["model"], keep))
    return KeptTokens(kept, threshold, covered_share(counts, set(kept)))
