"""Low-rank (factorised) word embeddings, as ALBERT factorises them.

A small student's word-embedding table (vocabulary x hidden) is most of its file. Written
as a vocabulary x r table times an r x hidden projection, it takes r/hidden of the room
(plus the projection). A trained table is not low-rank: cutting it after training costs
accuracy (the README has the figures), so a student trains in factorised form
(`factorize_word_embeddings`, initialised from the table's truncated SVD), and is saved
as a plain checkpoint of its architecture whose table is the product
(`merge_word_embeddings`), with `embedding_rank` in its config. Any loader reads it;
vocabulary pruning keeps rows of it, which keeps the rank; the ONNX export factorises it
again, exactly, since its rank is r, so the ONNX file holds the two small matrices
(`factorized_copy`).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from compression.core.errors import ConfigError
from compression.models.architectures import adapter_for

RANK_KEY = "embedding_rank"  # in the model's config.json


class LowRankEmbedding(nn.Module):
    """An Embedding whose table is `table @ projection`: (V, r) rows, an (r, H) map."""

    def __init__(self, table: torch.Tensor, projection: torch.Tensor,
                 padding_idx: int | None) -> None:
        super().__init__()
        self.table = nn.Parameter(table)  # (V, r)
        self.projection = nn.Parameter(projection)  # (r, H)
        self.padding_idx = padding_idx

    @classmethod
    def from_embedding(cls, embedding: nn.Embedding, rank: int) -> LowRankEmbedding:
        """The best rank-`rank` approximation of the table (truncated SVD)."""
        weight = embedding.weight.detach().float()
        u, s, vh = torch.linalg.svd(weight, full_matrices=False)
        return cls((u[:, :rank] * s[:rank]).contiguous(), vh[:rank].contiguous(),
                   embedding.padding_idx)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.table, self.padding_idx) @ self.projection

    def to_embedding(self) -> nn.Embedding:
        """A plain Embedding holding the product table."""
        product = (self.table @ self.projection).detach()
        embedding = nn.Embedding(product.shape[0], product.shape[1], self.padding_idx)
        embedding.weight.data.copy_(product)
        return embedding


def _embeddings(model: nn.Module) -> nn.Module:
    return adapter_for(model).embeddings(model)


def rank_of(model: nn.Module) -> int | None:
    """The rank a model was trained with (its config's `embedding_rank`), or None."""
    return getattr(model.config, RANK_KEY, None)


def factorize_word_embeddings(model: nn.Module, rank: int) -> None:
    """Replace the word-embedding table by its rank-`rank` factors, in place, and record
    the rank in the model's config."""
    embeddings = _embeddings(model)
    table = embeddings.word_embeddings
    if isinstance(table, LowRankEmbedding):
        raise ConfigError("the word embeddings are already factorised")
    vocab, hidden = table.weight.shape
    if not 1 <= rank < hidden:
        raise ConfigError(f"embedding rank must be in [1, {hidden - 1}] (the hidden size is "
                          f"{hidden}), got {rank}")
    embeddings.word_embeddings = LowRankEmbedding.from_embedding(table, rank)
    setattr(model.config, RANK_KEY, rank)


def merge_word_embeddings(model: nn.Module) -> None:
    """Put a plain Embedding holding the product back, so that the checkpoint is a
    standard one; the config keeps the rank."""
    embeddings = _embeddings(model)
    if isinstance(embeddings.word_embeddings, LowRankEmbedding):
        embeddings.word_embeddings = embeddings.word_embeddings.to_embedding()


def factorized_copy(model: nn.Module) -> nn.Module:
    """`model` itself when it has no embedding rank, else a copy whose table is factorised
    again (exactly, up to float rounding: the table's rank is at most `embedding_rank`)."""
    rank = rank_of(model)
    if rank is None:
        return model
    model = copy.deepcopy(model)
    factorize_word_embeddings(model, rank)
    return model
