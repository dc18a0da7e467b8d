"""Texts -> the padded int64 arrays an encoder's ONNX graph (or PyTorch model) reads.

One implementation for the service and for evaluation, benchmarks and calibration, so that
what is measured offline is what is served: the same tokenizer settings, the same pad id,
the same inputs fed.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Encoding, Tokenizer

# The encoder inputs a model may declare, in the order exporters write them. A graph that
# does not declare one (DistilBERT, RoBERTa: no token_type_ids) is not fed it.
ENCODER_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# The pad token's spelling in WordPiece (BERT), BPE/SentencePiece (RoBERTa, XLM-R) vocabularies.
PAD_TOKENS = ("[PAD]", "<pad>", "<PAD>")


def tokenizer_json(tokenizer: Tokenizer) -> dict[str, Any]:
    """The tokenizer's JSON with every vocabulary entry. `to_str` writes one string per id,
    so the aliases of a WordPiece vocabulary cut with `unseen: nearest` (several strings
    on one id) would be dropped and read as [UNK]; the model's own map keeps them."""
    data = json.loads(tokenizer.to_str())
    model = data.get("model") or {}
    if model.get("type") == "WordPiece":
        vocab = tokenizer.get_vocab(with_added_tokens=False)
        model["vocab"] = dict(sorted(vocab.items(), key=lambda item: item[1]))
    return data


def copy_tokenizer(tokenizer: Tokenizer) -> Tokenizer:
    """An independent copy (its truncation and padding can change without touching the
    original), aliases included (`tokenizer_json`)."""
    return Tokenizer.from_str(json.dumps(tokenizer_json(tokenizer)))


def find_pad_id(tokenizer: Tokenizer) -> int:
    """The id of the tokenizer's pad token; 0 when it has none of the usual spellings."""
    for token in PAD_TOKENS:
        token_id = tokenizer.token_to_id(token)
        if token_id is not None:
            return token_id
    return 0


class TextEncoder:
    """A tokenizer.json loaded once, truncating to `max_length`, never padding by itself:
    `encode` tokenizes, `feed` pads a batch of encodings to its longest and builds the
    arrays the model declares (`input_names`; all of ENCODER_INPUTS when not given)."""

    def __init__(self, tokenizer_file: Path | str | Tokenizer, max_length: int,
                 input_names: Collection[str] | None = None) -> None:
        # A Tokenizer object (a fast tokenizer's backend, in training) is copied: the
        # settings below must not change the caller's.
        self.tokenizer = (copy_tokenizer(tokenizer_file)
                          if isinstance(tokenizer_file, Tokenizer)
                          else Tokenizer.from_file(str(tokenizer_file)))
        self.tokenizer.enable_truncation(max_length=max_length)
        self.tokenizer.no_padding()  # each batch (or length group) pads itself
        self.max_length = max_length
        self.pad_id = find_pad_id(self.tokenizer)
        names = ENCODER_INPUTS if input_names is None else tuple(input_names)
        self.input_names = tuple(n for n in ENCODER_INPUTS if n in names)

    def encode(self, texts: Sequence[str]) -> list[Encoding]:
        return self.tokenizer.encode_batch(list(texts))

    def feed(self, encodings: Sequence[Encoding]) -> dict[str, np.ndarray]:
        """Right-padded to the longest encoding: each array (batch, longest) int64."""
        longest = max(len(e.ids) for e in encodings)
        shape = (len(encodings), longest)
        ids = np.full(shape, self.pad_id, dtype=np.int64)
        mask = np.zeros(shape, dtype=np.int64)
        types = np.zeros(shape, dtype=np.int64)
        for row, encoding in enumerate(encodings):
            n = len(encoding.ids)
            ids[row, :n], mask[row, :n], types[row, :n] = encoding.ids, 1, encoding.type_ids
        arrays = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        return {name: arrays[name] for name in self.input_names}

    def __call__(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        return self.feed(self.encode(texts))
