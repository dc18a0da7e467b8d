"""Encoders whose layers are BERT's own (attention.self.query, intermediate.dense, ...):
BERT, RoBERTa, XLM-RoBERTa and ELECTRA differ only around the layer stack."""

from __future__ import annotations

from torch import nn
from transformers import (
    BertForSequenceClassification,
    ElectraForSequenceClassification,
    PretrainedConfig,
    RobertaForSequenceClassification,
    XLMRobertaForSequenceClassification,
)
from transformers.models.bert.modeling_bert import BertLayer, BertModel
from transformers.models.electra.modeling_electra import ElectraLayer, ElectraModel
from transformers.models.roberta.modeling_roberta import RobertaLayer, RobertaModel
from transformers.models.xlm_roberta.modeling_xlm_roberta import (
    XLMRobertaLayer,
    XLMRobertaModel,
)

from compression.models.adapters.base import EncoderAdapter, LayerLayout

BERT_LAYER = LayerLayout(
    attention="attention.self",
    query="attention.self.query", key="attention.self.key", value="attention.self.value",
    attention_output="attention.output.dense",
    ffn_input="intermediate.dense", ffn_output="output.dense",
    attention_norm="attention.output.LayerNorm", output_norm="output.LayerNorm",
)


class BertAdapter(EncoderAdapter):
    """BERT and everything that loads as model_type "bert" (MiniLM, TinyBERT, ...)."""

    model_type = "bert"
    classifier_class = BertForSequenceClassification
    encoder_class = BertModel
    layer_class = BertLayer
    encoder_attr = "bert"
    layout = BERT_LAYER

    def uses_token_types(self, config: PretrainedConfig) -> bool:
        return True  # its exported graph has always had the input


class RobertaAdapter(BertAdapter):
    """RoBERTa: BERT's layers, no pooler (a two-Linear head on <s>), byte-level BPE,
    position ids counted from the pad id, one token type that the tokenizer never sets."""

    model_type = "roberta"
    classifier_class = RobertaForSequenceClassification
    encoder_class = RobertaModel
    layer_class = RobertaLayer
    encoder_attr = "roberta"

    def uses_token_types(self, config: PretrainedConfig) -> bool:
        return False

    def position_ids_follow_pad(self, config: PretrainedConfig) -> bool:
        return True


class XLMRobertaAdapter(RobertaAdapter):
    """XLM-RoBERTa: RoBERTa's model with a SentencePiece (Unigram) vocabulary."""

    model_type = "xlm-roberta"
    classifier_class = XLMRobertaForSequenceClassification
    encoder_class = XLMRobertaModel
    layer_class = XLMRobertaLayer
    encoder_attr = "roberta"


class ElectraAdapter(BertAdapter):
    """ELECTRA's discriminator: BERT's layers, embeddings that may be narrower than the
    layers (then `embeddings_project` lifts them) and a two-Linear head."""

    model_type = "electra"
    classifier_class = ElectraForSequenceClassification
    encoder_class = ElectraModel
    layer_class = ElectraLayer
    encoder_attr = "electra"

    def uses_token_types(self, config: PretrainedConfig) -> bool:
        return config.type_vocab_size > 1

    def embeddings_feed_layers(self, model: nn.Module) -> bool:
        # Narrower embeddings go through embeddings_project first: no residual reads them.
        return not hasattr(self.encoder(model), "embeddings_project")
