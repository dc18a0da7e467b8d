"""Architecture adapters: where a model type keeps its layers, attention heads, FFN and
embeddings, so that student initialisation, structured and vocabulary pruning, QAT,
low-rank embeddings and export never ask `if model_type == ...`.

One adapter per `config.model_type`, found through `adapter_for` (the idea of optimum's
NormalizedConfig, extended to module paths, as TextPruner maps them). A model type with
no adapter is refused with one line. To support another architecture, write its adapter
(the methods of `BertAdapter`) and add it to `ADAPTERS`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn
from transformers import BertForSequenceClassification, PretrainedConfig
from transformers.models.bert.modeling_bert import BertLayer, BertModel

from compression.core.errors import ConfigError, ModelError


@dataclass(frozen=True)
class NormalizedShape:
    """A config's shape in one vocabulary, whatever the architecture calls it."""

    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    vocab_size: int


def _keep_rows(linear: nn.Linear, index: torch.Tensor) -> nn.Linear:
    """A Linear with only the output features at `index` (rows of the weight)."""
    out = nn.Linear(linear.in_features, len(index), bias=linear.bias is not None)
    with torch.no_grad():
        out.weight.copy_(linear.weight[index])
        if linear.bias is not None:
            out.bias.copy_(linear.bias[index])
    return out


def _keep_columns(linear: nn.Linear, index: torch.Tensor) -> nn.Linear:
    """A Linear with only the input features at `index` (columns); the bias is kept."""
    out = nn.Linear(len(index), linear.out_features, bias=linear.bias is not None)
    with torch.no_grad():
        out.weight.copy_(linear.weight[:, index])
        if linear.bias is not None:
            out.bias.copy_(linear.bias)
    return out


def _head_columns(heads: Iterable[int], head_size: int) -> torch.Tensor:
    return torch.cat([torch.arange(h * head_size, (h + 1) * head_size) for h in heads])


class BertAdapter:
    """BERT and everything that loads as model_type "bert" (MiniLM, TinyBERT, ...)."""

    model_type = "bert"
    optimizer_model_type = "bert"  # onnxruntime.transformers.optimizer's name for it
    classifier_class = BertForSequenceClassification
    encoder_class = BertModel
    layer_class = BertLayer
    # Inside the encoder (`encoder_class`): the embeddings and the stack of layers.
    embeddings_path = "embeddings"
    layers_path = "encoder"

    # -- shape --------------------------------------------------------------------------
    def shape(self, config: PretrainedConfig) -> NormalizedShape:
        return NormalizedShape(config.hidden_size, config.num_hidden_layers,
                               config.num_attention_heads, config.intermediate_size,
                               config.vocab_size)

    def student_config(self, config: PretrainedConfig, num_layers: int,
                       hidden_size: int | None = None, num_heads: int | None = None,
                       intermediate_size: int | None = None) -> PretrainedConfig:
        """A copy of `config` with `num_layers` layers and, when given, another width."""
        config = copy.deepcopy(config)
        config.num_hidden_layers = num_layers
        if hidden_size is not None:
            config.hidden_size = hidden_size
            config.num_attention_heads = num_heads
            config.intermediate_size = intermediate_size
        return config

    # -- where things live --------------------------------------------------------------
    def encoder(self, model: nn.Module) -> nn.Module:
        return model.bert

    def find_encoder(self, model: nn.Module) -> tuple[str, nn.Module]:
        """The encoder inside a classifier or a wrapper around one, with its name."""
        for name, module in model.named_modules():
            if isinstance(module, self.encoder_class):
                return name, module
        raise ModelError(f"{type(model).__name__} holds no BERT encoder to prune")

    def layers(self, model: nn.Module) -> list[nn.Module]:
        return list(model.bert.encoder.layer)

    def embeddings(self, model: nn.Module) -> nn.Module:
        """The module holding `word_embeddings` (and position/type tables)."""
        return model.bert.embeddings

    def heads(self, layer: nn.Module) -> int:
        return layer.attention.self.num_attention_heads

    def head_size(self, layer: nn.Module) -> int:
        return layer.attention.self.attention_head_size

    def attention_width(self, layer: nn.Module) -> int:
        return layer.attention.self.all_head_size

    def ffn_width(self, layer: nn.Module) -> int:
        return layer.intermediate.dense.out_features

    def qkv(self, layer: nn.Module) -> list[nn.Linear]:
        attention = layer.attention.self
        return [attention.query, attention.key, attention.value]

    def attention_output(self, layer: nn.Module) -> nn.Linear:
        """The Linear that reads the heads' concatenated outputs."""
        return layer.attention.output.dense

    def ffn_output(self, layer: nn.Module) -> nn.Linear:
        """The Linear that reads the FFN neurons' activations."""
        return layer.output.dense

    def shared_activations(self, model: nn.Module) -> list[tuple[nn.Module, str, list[nn.Module]]]:
        """The LayerNorm outputs that feed weight MatMuls and also a residual Add:
        (parent, attribute, the Linears reading it). The last layer's output is left
        out: only the pooler's first-token slice of it is quantized."""
        layers = self.layers(model)
        shared = ([(self.embeddings(model), "LayerNorm", self.qkv(layers[0]))]
                  if layers else [])
        for index, layer in enumerate(layers):
            shared.append((layer.attention.output, "LayerNorm", [layer.intermediate.dense]))
            if index + 1 < len(layers):
                shared.append((layer.output, "LayerNorm", self.qkv(layers[index + 1])))
        return shared

    # -- surgery ------------------------------------------------------------------------
    def copy_layers(self, teacher: nn.Module, student: nn.Module, layers: list[int]) -> None:
        """DistilBERT-style initialisation: embeddings, the chosen teacher layers, pooler
        and classifier copied into a student of the same width."""
        student.bert.embeddings.load_state_dict(teacher.bert.embeddings.state_dict())
        for s_index, t_index in enumerate(layers):
            student.bert.encoder.layer[s_index].load_state_dict(
                teacher.bert.encoder.layer[t_index].state_dict())
        if teacher.bert.pooler is not None and student.bert.pooler is not None:
            student.bert.pooler.load_state_dict(teacher.bert.pooler.state_dict())
        student.classifier.load_state_dict(teacher.classifier.state_dict())

    def prune_layer(self, layer: nn.Module, keep_heads: list[int],
                    keep_neurons: list[int]) -> None:
        """Cut a layer down to `keep_heads` (indices) and `keep_neurons`, in place."""
        attention = layer.attention.self
        n_heads, width = self.heads(layer), self.ffn_width(layer)
        if not keep_heads:
            raise ConfigError("pruning every head of a layer leaves it no attention; keep >= 1")
        if not keep_neurons:
            raise ConfigError("pruning every feed-forward neuron of a layer; keep >= 1")
        if (any(not 0 <= h < n_heads for h in keep_heads)
                or len(set(keep_heads)) != len(keep_heads)):
            raise ConfigError(f"head indices must be distinct and in 0..{n_heads - 1}")
        if any(not 0 <= n < width for n in keep_neurons):
            raise ConfigError(f"neuron indices must be in 0..{width - 1}")
        columns = _head_columns(sorted(keep_heads), attention.attention_head_size)
        for name in ("query", "key", "value"):
            setattr(attention, name, _keep_rows(getattr(attention, name), columns))
        layer.attention.output.dense = _keep_columns(layer.attention.output.dense, columns)
        attention.num_attention_heads = len(keep_heads)
        attention.all_head_size = len(columns)
        neurons = torch.tensor(sorted(keep_neurons), dtype=torch.long)
        layer.intermediate.dense = _keep_rows(layer.intermediate.dense, neurons)
        layer.output.dense = _keep_columns(layer.output.dense, neurons)


class ArchitectureAdapter(Protocol):
    """What the compression steps ask of an architecture (`BertAdapter` documents each)."""

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


ADAPTERS: dict[str, ArchitectureAdapter] = {"bert": BertAdapter()}


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
