"""Architecture adapters: where a model type keeps its layers, attention heads, FFN and
embeddings, so that student initialisation, structured and vocabulary pruning, QAT,
low-rank embeddings and export never ask `if model_type == ...`.

One adapter per `config.model_type`, found through `adapter_for` (the idea of optimum's
NormalizedConfig, extended to module paths, as TextPruner maps them). A model type with
no adapter is refused with one line, and so is a method an architecture cannot take
(`refuse_if_unsupported`). To support another architecture, describe it in a module of
`models.adapters` (an `EncoderAdapter` subclass: mostly tables) and add it to `ADAPTERS`.
"""

from __future__ import annotations

from typing import Protocol

from torch import nn
from transformers import PretrainedConfig

from compression.core.errors import ConfigError, ModelError
from compression.models.adapters.base import HEAD_PRUNING, NormalizedShape
from compression.models.adapters.bert_family import (
    BertAdapter,
    ElectraAdapter,
    RobertaAdapter,
    XLMRobertaAdapter,
)
from compression.models.adapters.deberta_v2 import DebertaV2Adapter
from compression.models.adapters.distilbert import DistilBertAdapter
from compression.models.adapters.mpnet import MPNetAdapter

__all__ = ["ADAPTERS", "HEAD_PRUNING", "ArchitectureAdapter", "BertAdapter", "NormalizedShape",
           "adapter_for", "adapter_for_layer", "adapter_for_type", "refuse_if_unsupported",
           "supported_model_types"]


class ArchitectureAdapter(Protocol):
    """What the compression steps ask of an architecture (`adapters.base.EncoderAdapter`
    documents each)."""

    model_type: str
    optimizer_model_type: str
    classifier_class: type
    encoder_class: type
    layer_class: type
    embeddings_path: str
    layers_path: str

    def shape(self, config: PretrainedConfig) -> NormalizedShape: ...
    def student_config(self, config: PretrainedConfig, num_layers: int,
                       hidden_size: int | None = None, num_heads: int | None = None,
                       intermediate_size: int | None = None) -> PretrainedConfig: ...
    def input_names(self, config: PretrainedConfig) -> list[str]: ...
    def uses_token_types(self, config: PretrainedConfig) -> bool: ...
    def position_ids_follow_pad(self, config: PretrainedConfig) -> bool: ...
    def refusal(self, method: str, config: PretrainedConfig) -> str | None: ...
    def encoder(self, model: nn.Module) -> nn.Module: ...
    def find_encoder(self, model: nn.Module) -> tuple[str, nn.Module]: ...
    def layers(self, model: nn.Module) -> list[nn.Module]: ...
    def embeddings(self, model: nn.Module) -> nn.Module: ...
    def heads(self, layer: nn.Module) -> int: ...
    def head_size(self, layer: nn.Module) -> int: ...
    def attention_width(self, layer: nn.Module) -> int: ...
    def ffn_width(self, layer: nn.Module) -> int: ...
    def qkv(self, layer: nn.Module) -> list[nn.Linear]: ...
    def attention_output(self, layer: nn.Module) -> nn.Linear: ...
    def ffn_output(self, layer: nn.Module) -> nn.Linear: ...
    def shared_activations(self, model: nn.Module
                           ) -> list[tuple[nn.Module, str, list[nn.Module]]]: ...
    def copy_layers(self, teacher: nn.Module, student: nn.Module, layers: list[int]) -> None: ...
    def prune_layer(self, layer: nn.Module, keep_heads: list[int],
                    keep_neurons: list[int]) -> None: ...


ADAPTERS: dict[str, ArchitectureAdapter] = {
    adapter.model_type: adapter
    for adapter in (BertAdapter(), DistilBertAdapter(), RobertaAdapter(), XLMRobertaAdapter(),
                    ElectraAdapter(), DebertaV2Adapter(), MPNetAdapter())
}


def supported_model_types() -> list[str]:
    return sorted(ADAPTERS)


def adapter_for_type(model_type: str | None, where: str) -> ArchitectureAdapter:
    """The adapter of `model_type`; ModelError naming `where` and what is supported."""
    if model_type not in ADAPTERS:
        raise ModelError(f"{where}: model_type {model_type!r} is not a BERT-family encoder "
                         f"(supported: {supported_model_types()})")
    return ADAPTERS[model_type]


def adapter_for(model: nn.Module | PretrainedConfig) -> ArchitectureAdapter:
    """The adapter of a model (or of a wrapper with a `.config`, or of a config)."""
    config = model if isinstance(model, PretrainedConfig) else model.config
    return adapter_for_type(getattr(config, "model_type", None), type(model).__name__)


def adapter_for_layer(layer: nn.Module) -> ArchitectureAdapter:
    """The adapter whose encoder layers are of `layer`'s class."""
    for adapter in ADAPTERS.values():
        if isinstance(layer, adapter.layer_class):
            return adapter
    raise ModelError(f"{type(layer).__name__} is not an encoder layer of a supported model "
                     f"type (supported: {supported_model_types()})")


def refuse_if_unsupported(config: PretrainedConfig, method: str, where: str) -> None:
    """ConfigError, one line naming the method, the architecture and why, when the
    architecture of `config` cannot take `method`."""
    adapter = adapter_for(config)
    why = adapter.refusal(method, config)
    if why is not None:
        raise ConfigError(f"{where}: {method} is not available for {adapter.model_type} "
                          f"models: {why}")
