"""The shared machinery of the architecture adapters: an encoder described by tables
(where its layers, heads, FFN and LayerNorms live; what its config calls each size),
and the surgery every adapter does the same way once it knows where to cut.

An adapter for a new architecture is mostly data: a `LayerLayout`, a `ConfigNames` and
the class attributes of `EncoderAdapter`; it overrides a method only where its model
really differs (a head table shared by every layer, a pooler sized by the config).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from transformers import PretrainedConfig

from compression.core.errors import ConfigError, ModelError

# What `EncoderAdapter.refusal` is asked about: the methods some architecture cannot take.
HEAD_PRUNING = "head pruning"
ENCODER_INPUTS = ("input_ids", "attention_mask")  # every encoder reads these
TOKEN_TYPES = "token_type_ids"  # only those whose adapter says they use it


@dataclass(frozen=True)
class NormalizedShape:
    """A config's shape in one vocabulary, whatever the architecture calls it."""

    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    vocab_size: int


@dataclass(frozen=True)
class ConfigNames:
    """The config attributes that hold each size (DistilBERT says `dim`, `hidden_dim`)."""

    hidden_size: str = "hidden_size"
    num_layers: str = "num_hidden_layers"
    num_heads: str = "num_attention_heads"
    intermediate_size: str = "intermediate_size"
    vocab_size: str = "vocab_size"


@dataclass(frozen=True)
class LayerLayout:
    """Dotted paths inside one encoder layer, and the attention module's attributes."""

    attention: str  # the module that holds the head count
    query: str
    key: str
    value: str
    attention_output: str  # reads the heads' concatenated outputs
    ffn_input: str
    ffn_output: str  # reads the FFN neurons' activations
    attention_norm: str  # LayerNorm after attention: feeds ffn_input and a residual
    output_norm: str  # LayerNorm after the FFN: feeds the next layer and a residual
    heads_attr: str = "num_attention_heads"
    head_size_attr: str = "attention_head_size"
    width_attr: str | None = "all_head_size"  # None: the module keeps no such count
    # Linears whose output rows are per head too, when the layer has them (DeBERTa's
    # position projections): cut with the heads.
    per_head_rows: tuple[str, ...] = ()


def keep_rows(linear: nn.Linear, index: torch.Tensor) -> nn.Linear:
    """A Linear with only the output features at `index` (rows of the weight)."""
    out = nn.Linear(linear.in_features, len(index), bias=linear.bias is not None)
    with torch.no_grad():
        out.weight.copy_(linear.weight[index])
        if linear.bias is not None:
            out.bias.copy_(linear.bias[index])
    return out


def keep_columns(linear: nn.Linear, index: torch.Tensor) -> nn.Linear:
    """A Linear with only the input features at `index` (columns); the bias is kept."""
    out = nn.Linear(len(index), linear.out_features, bias=linear.bias is not None)
    with torch.no_grad():
        out.weight.copy_(linear.weight[:, index])
        if linear.bias is not None:
            out.bias.copy_(linear.bias)
    return out


def head_columns(heads: Iterable[int], head_size: int) -> torch.Tensor:
    return torch.cat([torch.arange(h * head_size, (h + 1) * head_size) for h in heads])


def _parent(root: nn.Module, path: str) -> tuple[nn.Module, str]:
    """The module holding the attribute at dotted `path`, and the attribute's name."""
    head, _, name = path.rpartition(".")
    return (root.get_submodule(head) if head else root), name


def replace_module(root: nn.Module, path: str, module: nn.Module) -> None:
    parent, name = _parent(root, path)
    setattr(parent, name, module)


def check_kept(keep_heads: list[int], keep_neurons: list[int], n_heads: int,
               width: int) -> None:
    """ConfigError unless the indices leave a layer that can run."""
    if not keep_heads:
        raise ConfigError("pruning every head of a layer leaves it no attention; keep >= 1")
    if not keep_neurons:
        raise ConfigError("pruning every feed-forward neuron of a layer; keep >= 1")
    if (any(not 0 <= h < n_heads for h in keep_heads)
            or len(set(keep_heads)) != len(keep_heads)):
        raise ConfigError(f"head indices must be distinct and in 0..{n_heads - 1}")
    if any(not 0 <= n < width for n in keep_neurons):
        raise ConfigError(f"neuron indices must be in 0..{width - 1}")


class EncoderAdapter:
    """An encoder classifier described by its tables; the methods read them.

    Subclasses set the class attributes below (one subclass per `config.model_type`).
    """

    model_type: ClassVar[str]
    optimizer_model_type: ClassVar[str] = "bert"  # onnxruntime's optimizer: its name for it
    classifier_class: ClassVar[type]
    encoder_class: ClassVar[type]
    layer_class: ClassVar[type]
    encoder_attr: ClassVar[str]  # the encoder inside the classifier ("bert")
    # Inside the encoder: the embeddings, and the module whose `layer` list holds the layers.
    embeddings_path: ClassVar[str] = "embeddings"
    layers_path: ClassVar[str] = "encoder"
    layout: ClassVar[LayerLayout]
    names: ClassVar[ConfigNames] = ConfigNames()
    # Methods this architecture cannot take, and why (see `refusal`).
    refused: ClassVar[Mapping[str, str]] = {}

    # -- shape --------------------------------------------------------------------------
    def shape(self, config: PretrainedConfig) -> NormalizedShape:
        n = self.names
        return NormalizedShape(getattr(config, n.hidden_size), getattr(config, n.num_layers),
                               getattr(config, n.num_heads), getattr(config, n.intermediate_size),
                               getattr(config, n.vocab_size))

    def student_config(self, config: PretrainedConfig, num_layers: int,
                       hidden_size: int | None = None, num_heads: int | None = None,
                       intermediate_size: int | None = None) -> PretrainedConfig:
        """A copy of `config` with `num_layers` layers and, when given, another width."""
        config = copy.deepcopy(config)
        n = self.names
        setattr(config, n.num_layers, num_layers)
        if hidden_size is not None:
            setattr(config, n.hidden_size, hidden_size)
            setattr(config, n.num_heads, num_heads)
            setattr(config, n.intermediate_size, intermediate_size)
        return config

    def input_names(self, config: PretrainedConfig) -> list[str]:
        """The encoder inputs the model reads: `token_type_ids` only if it uses them."""
        return [*ENCODER_INPUTS, *([TOKEN_TYPES] if self.uses_token_types(config) else [])]

    def uses_token_types(self, config: PretrainedConfig) -> bool:
        return False

    def position_ids_follow_pad(self, config: PretrainedConfig) -> bool:
        """True when position ids are counted from the pad id (RoBERTa, MPNet): then the
        pad token must keep its id through vocabulary pruning."""
        return False

    def refusal(self, method: str, config: PretrainedConfig) -> str | None:
        """Why `method` cannot apply to this architecture, or None when it can."""
        return self.refused.get(method)

    # -- where things live --------------------------------------------------------------
    def encoder(self, model: nn.Module) -> nn.Module:
        return getattr(model, self.encoder_attr)

    def find_encoder(self, model: nn.Module) -> tuple[str, nn.Module]:
        """The encoder inside a classifier or a wrapper around one, with its name."""
        for name, module in model.named_modules():
            if isinstance(module, self.encoder_class):
                return name, module
        raise ModelError(f"{type(model).__name__} holds no {self.model_type} encoder to prune")

    def layers(self, model: nn.Module) -> list[nn.Module]:
        return list(self.encoder(model).get_submodule(self.layers_path).layer)

    def embeddings(self, model: nn.Module) -> nn.Module:
        """The module holding `word_embeddings` (and position/type tables)."""
        return self.encoder(model).get_submodule(self.embeddings_path)

    def _attention(self, layer: nn.Module) -> nn.Module:
        return layer.get_submodule(self.layout.attention)

    def heads(self, layer: nn.Module) -> int:
        return getattr(self._attention(layer), self.layout.heads_attr)

    def head_size(self, layer: nn.Module) -> int:
        return getattr(self._attention(layer), self.layout.head_size_attr)

    def attention_width(self, layer: nn.Module) -> int:
        return self.heads(layer) * self.head_size(layer)

    def ffn_width(self, layer: nn.Module) -> int:
        return layer.get_submodule(self.layout.ffn_input).out_features

    def qkv(self, layer: nn.Module) -> list[nn.Linear]:
        lay = self.layout
        return [layer.get_submodule(p) for p in (lay.query, lay.key, lay.value)]

    def attention_output(self, layer: nn.Module) -> nn.Linear:
        """The Linear that reads the heads' concatenated outputs."""
        return layer.get_submodule(self.layout.attention_output)

    def ffn_output(self, layer: nn.Module) -> nn.Linear:
        """The Linear that reads the FFN neurons' activations."""
        return layer.get_submodule(self.layout.ffn_output)

    def embeddings_feed_layers(self, model: nn.Module) -> bool:
        """Whether the embeddings' LayerNorm output is what the first layer reads."""
        return True

    def shared_activations(self, model: nn.Module) -> list[tuple[nn.Module, str, list[nn.Module]]]:
        """The LayerNorm outputs that feed weight MatMuls and also a residual Add:
        (parent, attribute, the Linears reading it). The last layer's output is left
        out: only the head's first-token slice of it is quantized."""
        layers, lay = self.layers(model), self.layout
        shared = []
        if layers and self.embeddings_feed_layers(model):
            shared.append((self.embeddings(model), "LayerNorm", self.qkv(layers[0])))
        for index, layer in enumerate(layers):
            shared.append((*_parent(layer, lay.attention_norm),
                           [layer.get_submodule(lay.ffn_input)]))
            if index + 1 < len(layers):
                shared.append((*_parent(layer, lay.output_norm), self.qkv(layers[index + 1])))
        return shared

    # -- surgery ------------------------------------------------------------------------
    def copy_layers(self, teacher: nn.Module, student: nn.Module, layers: list[int]) -> None:
        """DistilBERT-style initialisation of a student of the same width: every weight
        outside the layer stack (embeddings, relative-position tables, pooler, head)
        copied, and student layer i from teacher layer `layers[i]`."""
        prefix = f"{self.encoder_attr}.{self.layers_path}.layer."
        source = teacher.state_dict()
        weights = {}
        for name in student.state_dict():
            if name.startswith(prefix):
                index, _, rest = name[len(prefix):].partition(".")
                name_in_teacher = f"{prefix}{layers[int(index)]}.{rest}"
            else:
                name_in_teacher = name
            weights[name] = source[name_in_teacher]
        student.load_state_dict(weights)

    def prune_layer(self, layer: nn.Module, keep_heads: list[int],
                    keep_neurons: list[int]) -> None:
        """Cut a layer down to `keep_heads` (indices) and `keep_neurons`, in place."""
        lay, attention = self.layout, self._attention(layer)
        check_kept(keep_heads, keep_neurons, self.heads(layer), self.ffn_width(layer))
        columns = head_columns(sorted(keep_heads), self.head_size(layer))
        per_head = (lay.query, lay.key, lay.value,
                    *(p for p in lay.per_head_rows if _has(layer, p)))
        for path in per_head:
            replace_module(layer, path, keep_rows(layer.get_submodule(path), columns))
        replace_module(layer, lay.attention_output,
                       keep_columns(self.attention_output(layer), columns))
        setattr(attention, lay.heads_attr, len(keep_heads))
        if lay.width_attr is not None:
            setattr(attention, lay.width_attr, len(columns))
        neurons = torch.tensor(sorted(keep_neurons), dtype=torch.long)
        replace_module(layer, lay.ffn_input, keep_rows(layer.get_submodule(lay.ffn_input),
                                                       neurons))
        replace_module(layer, lay.ffn_output, keep_columns(self.ffn_output(layer), neurons))


def _has(root: nn.Module, path: str) -> bool:
    try:
        root.get_submodule(path)
    except AttributeError:
        return False
    return True
