"""Vocabulary pruning: keep only the WordPiece tokens a task's training data uses.

The kept tokens are those seen when tokenizing the training texts, every special/added
token and (by default) a safety set of single characters and `##`+character pieces, so
an unseen word still decomposes into characters instead of collapsing to [UNK]. The
embedding matrix and tokenizer.json are rewritten consistently: new id i is the position
of the old id in the sorted kept list.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer

from .configs import config_digest
from .errors import ConfigError, ModelError
from .steps import WEIGHTS_FILE, checksum_or_none, finished_result, write_result

log = logging.getLogger(__name__)

MODEL_SUBDIR = "model"
TOKENIZER_FILE = "tokenizer.json"
REQUIRED_SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")
OPTIONAL_SPECIAL = ("[MASK]",)


def _as_json(tokenizer_json: dict[str, Any] | Tokenizer) -> dict[str, Any]:
    if isinstance(tokenizer_json, Tokenizer):
        return json.loads(tokenizer_json.to_str())
    if isinstance(tokenizer_json, dict):
        return tokenizer_json
    raise ConfigError(f"expected a tokenizer.json dict or a tokenizers.Tokenizer, "
                      f"got {type(tokenizer_json).__name__}")


def _vocab(data: dict[str, Any]) -> dict[str, int]:
    model = data.get("model") or {}
    if model.get("type") != "WordPiece" or not isinstance(model.get("vocab"), dict):
        raise ConfigError(f"vocabulary pruning needs a WordPiece tokenizer, got model type "
                          f"{model.get('type')!r}")
    return model["vocab"]


def _bare_tokenizer(data: dict[str, Any]) -> Tokenizer:
    """The tokenizer without truncation or padding, so every token of a text is seen."""
    tokenizer = Tokenizer.from_str(json.dumps(data))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def _check_texts(texts: list[str]) -> list[str]:
    texts = [t for t in texts if isinstance(t, str) and t.strip()]
    if not texts:
        raise ConfigError("vocabulary pruning needs training texts; got none (or only blanks)")
    return texts


def kept_token_ids(
    tokenizer_json: dict[str, Any] | Tokenizer,
    texts: list[str],
    keep_chars: bool = True,
    extra_tokens: Iterable[str] = (),
) -> list[int]:
    """Sorted original ids to keep: those seen in `texts`, every special/added token,
    (with `keep_chars`) every single-character and `##`+character token, and
    `extra_tokens`. ConfigError if a required special token is missing."""
    data = _as_json(tokenizer_json)
    vocab = _vocab(data)
    texts = _check_texts(list(texts))
    unk = (data.get("model") or {}).get("unk_token") or "[UNK]"
    missing = [t for t in dict.fromkeys((*REQUIRED_SPECIAL, unk)) if t not in vocab]
    if missing:
        raise ConfigError(f"the tokenizer's vocabulary lacks the special token(s) {missing}; "
                          "pruning would leave no id for them")
    keep: set[int] = set()
    for encoding in _bare_tokenizer(data).encode_batch(texts, add_special_tokens=True):
        keep.update(encoding.ids)
    keep.update(vocab[t] for t in (*REQUIRED_SPECIAL, unk, *OPTIONAL_SPECIAL) if t in vocab)
    keep.update(int(a["id"]) for a in data.get("added_tokens") or [])
    if keep_chars:
        prefix = (data.get("model") or {}).get("continuing_subword_prefix") or "##"
        keep.update(i for tok, i in vocab.items()
                    if len(tok) == 1 or (tok.startswith(prefix) and len(tok) == len(prefix) + 1))
    unknown = [t for t in extra_tokens if t not in vocab]
    if unknown:
        raise ConfigError(f"extra tokens not in the vocabulary: {unknown[:10]}")
    keep.update(vocab[t] for t in extra_tokens)
    return sorted(keep)


def _remap_post_processor(processor: dict[str, Any] | None, vocab: dict[str, int]) -> None:
    """Point the post-processor's special tokens at their new ids, in place."""
    if not processor:
        return
    kind = processor.get("type")
    if kind == "Sequence":
        for inner in processor.get("processors") or []:
            _remap_post_processor(inner, vocab)
    elif kind == "TemplateProcessing":
        for name, special in (processor.get("special_tokens") or {}).items():
            tokens = special.get("tokens") or [name]
            try:
                special["ids"] = [vocab[t] for t in tokens]
            except KeyError as exc:
                raise ConfigError(f"post-processor token {exc.args[0]!r} is not in the "
                                  "pruned vocabulary") from exc
    elif kind in ("BertProcessing", "RobertaProcessing"):
        for key in ("sep", "cls"):
            token = processor[key][0]
            if token not in vocab:
                raise ConfigError(f"post-processor token {token!r} is not in the pruned "
                                  "vocabulary")
            processor[key] = [token, vocab[token]]


def pruned_tokenizer_json(data: dict[str, Any], kept: list[int]) -> dict[str, Any]:
    """tokenizer.json with only the `kept` tokens, renumbered 0..len(kept)-1."""
    data = copy.deepcopy(data)
    old_vocab = _vocab(data)
    by_id = {i: tok for tok, i in old_vocab.items()}
    new_id = {old: new for new, old in enumerate(kept)}
    new_vocab = {by_id[old]: new for new, old in enumerate(kept) if old in by_id}
    data["model"]["vocab"] = new_vocab
    for added in data.get("added_tokens") or []:
        added["id"] = new_id[int(added["id"])]
    _remap_post_processor(data.get("post_processor"), new_vocab)
    padding = data.get("padding")
    if padding and "pad_id" in padding:
        pad_token = padding.get("pad_token", "[PAD]")
        padding["pad_id"] = new_vocab[pad_token] if pad_token in new_vocab \
            else new_id[padding["pad_id"]]
    return data


def _unk_fraction(tokenizer: Tokenizer, texts: list[str], unk_id: int) -> float:
    ids = [i for e in tokenizer.encode_batch(texts, add_special_tokens=False) for i in e.ids]
    return sum(i == unk_id for i in ids) / len(ids) if ids else 0.0


def prune_vocabulary(
    model_dir: Path,
    out_dir: Path,
    texts: list[str],
    keep_chars: bool = True,
    extra_tokens: Iterable[str] = (),
) -> dict[str, Any]:
    """Write `out_dir/model`: `model_dir`'s classifier with only the kept tokens in its
    embedding matrix and tokenizer, and `out_dir/result.json`. Reuses a finished run."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    from .modeling import count_parameters, load_classifier

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    texts = _check_texts(list(texts))
    extra_tokens = list(extra_tokens)
    digest = config_digest({
        "model": str(model_dir), "weights": checksum_or_none(model_dir / WEIGHTS_FILE),
        "tokenizer": checksum_or_none(model_dir / TOKENIZER_FILE), "keep_chars": keep_chars,
        "extra_tokens": extra_tokens,
        "texts": hashlib.sha256("\n".join(texts).encode()).hexdigest(),
    })
    done = finished_result(out_dir, digest)
    if done:
        log.info("prune-vocab: reusing %s (same config)", out_dir)
        return done

    model = load_classifier(str(model_dir))  # ModelError unless a BERT classifier
    tokenizer_file = model_dir / TOKENIZER_FILE
    if not tokenizer_file.is_file():
        raise ModelError(f"{model_dir}: no {TOKENIZER_FILE}; vocabulary pruning rewrites it")
    try:
        data = json.loads(tokenizer_file.read_text())
    except json.JSONDecodeError as exc:
        raise ModelError(f"{tokenizer_file}: not valid JSON") from exc
    kept = kept_token_ids(data, texts, keep_chars, extra_tokens)

    old = model.get_input_embeddings()
    vocab_before = old.weight.shape[0]
    if kept[-1] >= vocab_before:
        raise ConfigError(f"the tokenizer has id {kept[-1]} but the model's embedding matrix "
                          f"only {vocab_before} rows")
    new_data = pruned_tokenizer_json(data, kept)
    new_vocab = new_data["model"]["vocab"]
    pad_id = new_vocab["[PAD]"]
    embedding = torch.nn.Embedding(len(kept), old.weight.shape[1], padding_idx=pad_id)
    with torch.no_grad():
        embedding.weight.copy_(old.weight[torch.tensor(kept, dtype=torch.long)])
    parameters_before = count_parameters(model)
    model.set_input_embeddings(embedding)
    model.config.vocab_size = len(kept)
    model.config.pad_token_id = pad_id

    target = out_dir / MODEL_SUBDIR
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(target))
    raw_file = target / TOKENIZER_FILE
    raw_file.write_text(json.dumps(new_data, ensure_ascii=False, indent=2))
    fast = PreTrainedTokenizerFast(
        tokenizer_file=str(raw_file), unk_token="[UNK]", pad_token="[PAD]",
        cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]" if "[MASK]" in new_vocab else None,
    )
    fast.save_pretrained(str(target))
    for path in target.iterdir():
        if path.is_file():
            os.chmod(path, 0o644)
    try:  # what every later step loads: fail here, not three steps on
        AutoTokenizer.from_pretrained(str(target))
        load_classifier(str(target))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{target}: the pruned model does not load back ({exc})") from exc

    pruned = Tokenizer.from_file(str(raw_file))
    pruned.no_truncation()
    pruned.no_padding()
    unk_after = _unk_fraction(pruned, texts, new_vocab["[UNK]"])
    unk_before = _unk_fraction(_bare_tokenizer(data), texts, _vocab(data)["[UNK]"])
    hidden = old.weight.shape[1]
    log.info("prune-vocab: %d -> %d tokens, [UNK] fraction %.4f", vocab_before, len(kept),
             unk_after)
    return write_result(
        out_dir, "prune-vocab", digest, model_dir=str(target), parent=str(model_dir),
        labels=[model.config.id2label[i] for i in range(model.config.num_labels)],
        vocab_before=vocab_before, vocab_after=len(kept),
        embedding_parameters_before=vocab_before * hidden,
        embedding_parameters_after=len(kept) * hidden,
        parameters_before=parameters_before, parameters_after=count_parameters(model),
        unk_fraction_before=unk_before, unk_fraction_after=unk_after,
        keep_chars=keep_chars, extra_tokens=extra_tokens, texts=len(texts),
    )
