"""Tokenize and feed: texts -> the padded int64 arrays an ONNX or PyTorch encoder reads,
with the `tokenizers` library, as the service does. `encode_texts` is the one function to
swap for the service's shared encoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tokenizers import Tokenizer


def encode_texts(tokenizer: Tokenizer, texts: list[str], pad_id: int) -> dict[str, np.ndarray]:
    """`texts` tokenized (truncation as the tokenizer is set) and right-padded to the
    longest: input_ids, attention_mask, token_type_ids, each (batch, longest) int64."""
    encodings = tokenizer.encode_batch(texts)
    longest = max(len(e.ids) for e in encodings)
    ids = np.full((len(texts), longest), pad_id, dtype=np.int64)
    mask = np.zeros((len(texts), longest), dtype=np.int64)
    types = np.zeros((len(texts), longest), dtype=np.int64)
    for row, e in enumerate(encodings):
        n = len(e.ids)
        ids[row, :n], mask[row, :n], types[row, :n] = e.ids, 1, e.type_ids
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


class BatchEncoder:
    """A tokenizer.json loaded once, truncating to `max_length`; call it on a batch."""

    def __init__(self, tokenizer_file: Path, max_length: int) -> None:
        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self.tokenizer.enable_truncation(max_length)
        self.tokenizer.no_padding()
        pad_id = self.tokenizer.token_to_id("[PAD]")
        self.pad_id = 0 if pad_id is None else pad_id

    def __call__(self, texts: list[str]) -> dict[str, np.ndarray]:
        return encode_texts(self.tokenizer, texts, self.pad_id)
