"""DistilBERT: its own names for everything (q_lin, lin1, sa_layer_norm; `dim`, `n_heads`,
`hidden_dim` in the config), no token types, and a pre-classifier Linear as the head."""

from __future__ import annotations

from transformers import DistilBertForSequenceClassification
from transformers.models.distilbert.modeling_distilbert import DistilBertModel, TransformerBlock

from compression.models.adapters.base import ConfigNames, EncoderAdapter, LayerLayout


class DistilBertAdapter(EncoderAdapter):
    model_type = "distilbert"
    classifier_class = DistilBertForSequenceClassification
    encoder_class = DistilBertModel
    layer_class = TransformerBlock
    encoder_attr = "distilbert"
    layers_path = "transformer"
    layout = LayerLayout(
        attention="attention",
        query="attention.q_lin", key="attention.k_lin", value="attention.v_lin",
        attention_output="attention.out_lin",
        ffn_input="ffn.lin1", ffn_output="ffn.lin2",
        attention_norm="sa_layer_norm", output_norm="output_layer_norm",
        heads_attr="n_heads", width_attr=None,  # its attention reshapes by head size only
    )
    names = ConfigNames(hidden_size="dim", num_layers="n_layers", num_heads="n_heads",
                        intermediate_size="hidden_dim")
