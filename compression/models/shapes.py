"""The pruned-shape format: a structurally pruned model records its per-layer heads and
FFN width in `config.pruned_layers`, since transformers cannot size narrower layers from
a config. `apply_layer_shapes` rebuilds them before the weights are loaded
(`models.loading.load_classifier`); `pruning.structured` writes them."""

from __future__ import annotations

from torch import nn

from compression.core.errors import ConfigError
from compression.models.architectures import adapter_for

SHAPES_KEY = "pruned_layers"  # config attribute: [{"heads": h, "intermediate_size": w}, ...]


def layer_shapes(model: nn.Module) -> list[dict[str, int]]:
    """Heads and FFN width of each encoder layer, as recorded in `config.pruned_layers`."""
    adapter = adapter_for(model)
    return [{"heads": adapter.heads(layer), "intermediate_size": adapter.ffn_width(layer)}
            for layer in adapter.layers(model)]


def apply_layer_shapes(model: nn.Module, shapes: list[dict[str, int]]) -> None:
    """Give a freshly built model the pruned shapes its saved weights have (values are
    overwritten by the weights loaded next)."""
    adapter = adapter_for(model)
    layers = adapter.layers(model)
    if len(shapes) != len(layers):
        raise ConfigError(f"{SHAPES_KEY} lists {len(shapes)} layers, the model has {len(layers)}")
    for layer, shape in zip(layers, shapes, strict=True):
        adapter.prune_layer(layer, list(range(int(shape["heads"]))),
                            list(range(int(shape["intermediate_size"]))))
