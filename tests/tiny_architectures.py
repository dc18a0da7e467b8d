"""Tiny random encoders of every supported model type, each with a tokenizer of its
family trained offline on a few hundred sentences.

WordPiece for bert, distilbert, electra and mpnet; byte-level BPE for roberta; Unigram
with Metaspace (SentencePiece-style) for xlm-roberta and deberta-v2. Each tokenizer is
wrapped in the model type's transformers class and saved with `save_pretrained`, so
`AutoTokenizer.from_pretrained(folder)` works, and the model is a random
`*ForSequenceClassification` (hidden 32, 2 layers, 4 heads, FFN 64) saved beside it:
what a pretrained encoder folder looks like to `finetune`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tiny_models import WORDS, toy_sentences
from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)

ARCHITECTURES = ("bert", "distilbert", "roberta", "xlm-roberta", "electra", "deberta-v2",
                 "mpnet")
HIDDEN, LAYERS, HEADS, FFN, MAX_POSITIONS = 32, 2, 4, 64, 64
# Words the toy task never uses: the tokenizers learn them, vocabulary pruning drops them.
EXTRA_WORDS = (
    "kitchen garden window river mountain forest ocean desert bridge castle village city "
    "yellow purple orange silver golden ancient modern quiet noisy gentle rapid frozen "
    "engine rocket planet comet galaxy music guitar violin piano drum singer painter "
    "doctor teacher farmer sailor pilot dancer writer reader yesterday tomorrow morning "
    "evening winter summer autumn spring breakfast dinner coffee bread cheese apple"
).split()
BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
MPNET_SPECIALS = ["<s>", "<pad>", "</s>", "[UNK]", "<mask>"]  # <pad> at 1, as MPNet needs


def corpus() -> list[str]:
    """What the tokenizers learn from: toy sentences and every word, known or not."""
    words = WORDS + EXTRA_WORDS
    return (toy_sentences(300, seed=11)[0]
            + [" ".join(words[i:i + 6]) for i in range(0, len(words), 2)])


def _template(tok: Tokenizer, cls: str, sep: str, pair_sep: str) -> None:
    tok.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}", pair=f"{cls} $A {pair_sep} $B:1 {sep}:1",
        special_tokens=[(cls, tok.token_to_id(cls)), (sep, tok.token_to_id(sep))])


def wordpiece(specials: list[str], unk: str, cls: str, sep: str) -> Tokenizer:
    tok = Tokenizer(models.WordPiece(unk_token=unk))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(corpus(), trainers.WordPieceTrainer(
        vocab_size=260, special_tokens=specials, min_frequency=1))
    _template(tok, cls, sep, sep if cls == "[CLS]" else f"{sep} {sep}")
    tok.decoder = decoders.WordPiece()
    return tok


def byte_level_bpe() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(corpus(), trainers.BpeTrainer(
        vocab_size=420, special_tokens=ROBERTA_SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.post_processor = processors.RobertaProcessing(
        ("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>")),
        trim_offsets=True, add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return tok


def unigram(specials: list[str], unk: str, cls: str, sep: str) -> Tokenizer:
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.train_from_iterator(corpus(), trainers.UnigramTrainer(
        vocab_size=220, special_tokens=specials, unk_token=unk))
    _template(tok, cls, sep, sep if cls == "[CLS]" else f"{sep} {sep}")
    tok.decoder = decoders.Metaspace()
    return tok


@dataclass(frozen=True)
class Family:
    """How one model type's tokenizer and config are made."""

    tokenizer: Callable[[], Tokenizer]
    tokenizer_class: str  # in transformers
    config_class: str
    special_map: dict[str, str]
    config: dict[str, Any]


_BERT_MAP = {"unk_token": "[UNK]", "pad_token": "[PAD]", "cls_token": "[CLS]",
             "sep_token": "[SEP]", "mask_token": "[MASK]"}
_ROBERTA_MAP = {"bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>",
                "cls_token": "<s>", "unk_token": "<unk>", "pad_token": "<pad>",
                "mask_token": "<mask>"}
_ROBERTA_CONFIG = {"pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2,
                   "type_vocab_size": 1, "max_position_embeddings": MAX_POSITIONS + 2}


def _bert_wordpiece() -> Tokenizer:
    return wordpiece(BERT_SPECIALS, "[UNK]", "[CLS]", "[SEP]")


FAMILIES: dict[str, Family] = {
    "bert": Family(_bert_wordpiece, "BertTokenizerFast", "BertConfig", _BERT_MAP, {}),
    "distilbert": Family(_bert_wordpiece, "DistilBertTokenizerFast", "DistilBertConfig",
                         _BERT_MAP, {"dim": HIDDEN, "n_layers": LAYERS, "n_heads": HEADS,
                                     "hidden_dim": FFN}),
    "electra": Family(_bert_wordpiece, "ElectraTokenizerFast", "ElectraConfig", _BERT_MAP,
                      {"embedding_size": 16}),  # narrower embeddings, projected up
    "mpnet": Family(lambda: wordpiece(MPNET_SPECIALS, "[UNK]", "<s>", "</s>"),
                    "MPNetTokenizerFast", "MPNetConfig",
                    {**_ROBERTA_MAP, "unk_token": "[UNK]"},
                    {"pad_token_id": 1, "max_position_embeddings": MAX_POSITIONS + 2}),
    "roberta": Family(byte_level_bpe, "RobertaTokenizerFast", "RobertaConfig", _ROBERTA_MAP,
                      _ROBERTA_CONFIG),
    "xlm-roberta": Family(lambda: unigram(ROBERTA_SPECIALS, "<unk>", "<s>", "</s>"),
                          "XLMRobertaTokenizerFast", "XLMRobertaConfig", _ROBERTA_MAP,
                          _ROBERTA_CONFIG),
    "deberta-v2": Family(lambda: unigram(BERT_SPECIALS, "[UNK]", "[CLS]", "[SEP]"),
                         "DebertaV2TokenizerFast", "DebertaV2Config",
                         {**_BERT_MAP, "bos_token": "[CLS]", "eos_token": "[SEP]"},
                         {"pad_token_id": 0, "relative_attention": True,
                          "pos_att_type": ["p2c", "c2p"], "position_biased_input": False,
                          "position_buckets": 16, "max_relative_positions": MAX_POSITIONS,
                          "share_att_key": True, "norm_rel_ebd": "layer_norm"}),
}


def save_tokenizer(name: str, folder: Path) -> int:
    """Train `name`'s tokenizer, save it into `folder`; its vocabulary size."""
    import transformers

    family = FAMILIES[name]
    tok = family.tokenizer()
    wrapper = getattr(transformers, family.tokenizer_class)
    wrapper(tokenizer_object=tok, **family.special_map).save_pretrained(str(folder))
    return tok.get_vocab_size()


def tiny_config(name: str, vocab_size: int, labels: tuple[str, ...] = ("0", "1"),
                **overrides: Any) -> Any:
    """The tiny config of model type `name`."""
    import transformers

    family = FAMILIES[name]
    values: dict[str, Any] = {
        "vocab_size": vocab_size, "hidden_size": HIDDEN, "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS, "intermediate_size": FFN,
        "max_position_embeddings": MAX_POSITIONS, "num_labels": len(labels),
        "id2label": dict(enumerate(labels)),
        "label2id": {label: i for i, label in enumerate(labels)},
        **family.config, **overrides,
    }
    return getattr(transformers, family.config_class)(**values)


def build_encoder(name: str, folder: Path, seed: int = 0) -> Path:
    """A random tiny classifier of model type `name` and its tokenizer in `folder`."""
    import torch
    from transformers import AutoModelForSequenceClassification

    folder.mkdir(parents=True, exist_ok=True)
    vocab_size = save_tokenizer(name, folder)
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_config(tiny_config(name, vocab_size))
    model.save_pretrained(str(folder))
    return folder
