"""The structured-pruning step's configuration: heads, FFN neurons and whole layers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from compression.config.checks import require
from compression.core.errors import ConfigError

PRUNE_SCOPES = ("per-layer", "global")


@dataclass(frozen=True)
class PruneConfig:
    """Structured pruning: whole attention heads and feed-forward neurons removed, the
    least important first (importance = |gradient of the task loss w.r.t. a gate on the
    head or neuron|, summed over `importance_batches` training batches; Michel et al.
    2019). The matrices physically shrink.

    scope "per-layer": every layer keeps `heads` heads and `ffn` neurons. "global": the
    model keeps `heads` x layers heads and `ffn` x layers neurons in all, the most important
    across layers (scores normalised per layer, as Michel et al.), at least one per layer,
    so a layer that matters more keeps more.

    layers: the encoder layers kept, by index; the others are removed whole (before heads
    and neurons are scored, so that their importance is measured in the model that stays).
    On long inputs a layer's cost is mostly arithmetic that width cuts only in part, so
    depth is what buys the last factor of speed there (SQuAD windows of 384 tokens)."""

    heads: int | None = None  # attention heads kept per layer (the average, if global)
    ffn: int | None = None  # feed-forward (intermediate) neurons kept per layer (likewise)
    importance_batches: int = 64
    batch_size: int = 32
    scope: str = "per-layer"
    layers: tuple[int, ...] | None = None  # encoder layers kept; None keeps every one

    def __post_init__(self) -> None:
        if self.layers is not None:
            object.__setattr__(self, "layers", _layer_indices(self.layers))
        require(self.heads is not None or self.ffn is not None or self.layers is not None,
                "structured pruning needs a target: heads, ffn and/or layers")
        require(self.heads is None or self.heads >= 1,
                f"heads must be >= 1 (a layer with no heads has no attention), got {self.heads}")
        require(self.ffn is None or self.ffn >= 1,
                f"ffn must be >= 1 (a layer with no feed-forward neurons), got {self.ffn}")
        require(self.importance_batches >= 1, "importance_batches must be >= 1")
        require(self.batch_size >= 1, "batch_size must be >= 1")
        require(self.scope in PRUNE_SCOPES,
                f"scope must be one of {list(PRUNE_SCOPES)}, got {self.scope!r}")

    @property
    def scores_units(self) -> bool:
        """Whether heads or neurons are cut (by importance: training batches needed)."""
        return self.heads is not None or self.ffn is not None


def _layer_indices(raw: Any) -> tuple[int, ...]:
    """`layers` as given (a list, or "0,2,3,5"): distinct whole numbers >= 0, in order."""
    items = raw.split(",") if isinstance(raw, str) else raw
    try:
        indices = tuple(int(str(item).strip()) for item in items)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"layers lists the encoder layers kept, e.g. [0, 2, 3, 5]; "
                          f"got {raw!r}") from exc
    require(bool(indices), "layers must keep at least one encoder layer")
    require(all(i >= 0 for i in indices), f"layers are indices from 0, got {list(indices)}")
    require(len(set(indices)) == len(indices), f"layers lists one twice: {list(indices)}")
    require(list(indices) == sorted(indices),
            f"layers must be in increasing order (the order they run), got {list(indices)}")
    return indices
