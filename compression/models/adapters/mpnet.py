"""MPNet: BERT-like layers under other names (attention.attn.q), a relative-position
bias table shared by every layer, and position ids counted from the pad id (1)."""

from __future__ import annotations

from torch import nn
from transformers import MPNetForSequenceClassification, PretrainedConfig
from transformers.models.mpnet.modeling_mpnet import MPNetLayer, MPNetModel

from compression.core.errors import ConfigError
from compression.models.adapters.base import HEAD_PRUNING, EncoderAdapter, LayerLayout

SHARED_BIAS = ("its relative-position bias (encoder.relative_attention_bias) holds every "
               "head's column and is shared by all layers, so one layer cannot lose heads "
               "alone; prune FFN neurons only (heads: null)")


class MPNetAdapter(EncoderAdapter):
    model_type = "mpnet"
    classifier_class = MPNetForSequenceClassification
    encoder_class = MPNetModel
    layer_class = MPNetLayer
    encoder_attr = "mpnet"
    layout = LayerLayout(
        attention="attention.attn",
        query="attention.attn.q", key="attention.attn.k", value="attention.attn.v",
        attention_output="attention.attn.o",
        ffn_input="intermediate.dense", ffn_output="output.dense",
        attention_norm="attention.LayerNorm", output_norm="output.LayerNorm",
    )
    refused = {HEAD_PRUNING: SHARED_BIAS}

    def position_ids_follow_pad(self, config: PretrainedConfig) -> bool:
        return True

    def prune_layer(self, layer: nn.Module, keep_heads: list[int],
                    keep_neurons: list[int]) -> None:
        if sorted(keep_heads) != list(range(self.heads(layer))):
            raise ConfigError(f"{HEAD_PRUNING} is not available for mpnet models: {SHARED_BIAS}")
        super().prune_layer(layer, keep_heads, keep_neurons)
