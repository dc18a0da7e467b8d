"""DeBERTa-v2/v3: disentangled attention whose relative-position keys and queries are
made per head (by the layer's own key/query projections, or by pos_key_proj and
pos_query_proj), a context pooler sized by `pooler_hidden_size`, and embeddings
masked after their LayerNorm."""

from __future__ import annotations

from torch import nn
from transformers import DebertaV2ForSequenceClassification, PretrainedConfig
from transformers.models.deberta_v2.modeling_deberta_v2 import DebertaV2Layer, DebertaV2Model

from compression.models.adapters.base import EncoderAdapter, LayerLayout


class DebertaV2Adapter(EncoderAdapter):
    model_type = "deberta-v2"
    classifier_class = DebertaV2ForSequenceClassification
    encoder_class = DebertaV2Model
    layer_class = DebertaV2Layer
    encoder_attr = "deberta"
    layout = LayerLayout(
        attention="attention.self",
        query="attention.self.query_proj", key="attention.self.key_proj",
        value="attention.self.value_proj",
        attention_output="attention.output.dense",
        ffn_input="intermediate.dense", ffn_output="output.dense",
        attention_norm="attention.output.LayerNorm", output_norm="output.LayerNorm",
        # Without share_att_key the position keys/queries have their own projections,
        # one block of rows per head like the content ones: cut with the heads.
        per_head_rows=("attention.self.pos_key_proj", "attention.self.pos_query_proj"),
    )

    def uses_token_types(self, config: PretrainedConfig) -> bool:
        return config.type_vocab_size > 0

    def student_config(self, config: PretrainedConfig, num_layers: int,
                       hidden_size: int | None = None, num_heads: int | None = None,
                       intermediate_size: int | None = None) -> PretrainedConfig:
        config = super().student_config(config, num_layers, hidden_size, num_heads,
                                        intermediate_size)
        if hidden_size is not None:  # the pooler reads the layers' width
            config.pooler_hidden_size = hidden_size
        return config

    def embeddings_feed_layers(self, model: nn.Module) -> bool:
        return False  # the LayerNorm output is multiplied by the mask before the layers
