"""Vocabulary pruning: keep only the tokens a task's training data uses (WordPiece,
byte-level BPE or Unigram vocabularies: `pruning.tokenizer_models` knows each kind).

The kept tokens are those seen when tokenizing the training texts (with `min_count`, seen
at least that many times: the rare ones are dropped too; with `coverage`, the most
frequent ones until they make up that share of the texts' token occurrences, which
scales with the data: `pruning.token_counts`), every special/added
token and (by default) a safety set of single characters and `##`+character pieces (a
BPE alphabet's bytes, a Unigram's characters), so an unseen word still decomposes into
characters instead of collapsing to [UNK]. The embedding matrix and tokenizer.json are
rewritten consistently: new id i is the position of the old id in the sorted kept list.

What happens to a dropped token is the `unseen` policy:

- `"chars"` (default): it leaves tokenizer.json, so a word that needed it splits into
  smaller kept pieces (often single characters), patterns the model never saw.
- `"nearest"`: it stays in tokenizer.json as an alias for the new id of the kept token
  whose input-embedding row is most similar (cosine; `##` pieces only to kept `##`
  pieces, word starts only to kept word starts, never to special tokens). The embedding
  matrix shrinks exactly as with "chars", but an unseen word still tokenizes as one
  piece, embedded like a close kept token. WordPiece only: a BPE's merges and a
  Unigram's list cannot hold two strings on one id (refused before any work).

An aliased tokenizer.json maps several strings to one id. The `tokenizers` library
encodes with it correctly, but serializing it again (`Tokenizer.to_str`/`save`,
transformers' `save_pretrained`) keeps one arbitrary string per id and silently drops
the others, kept tokens included: copy such a tokenizer.json byte for byte, never
re-save it; copy a loaded one with `inference.encoder.copy_tokenizer` (or
`tokenizer_json`), which writes the model's whole map back.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from compression.config.steps import UNSEEN_POLICIES
from compression.core.digest import optional, text_digest
from compression.core.errors import ConfigError, ModelError
from compression.core.files import (
    MODEL_SUBDIR,
    TOKENIZER_FILE,
    WEIGHTS_FILE,
    checksum_or_none,
    make_world_readable,
)
from compression.core.steps import run_step
from compression.models.architectures import adapter_for
from compression.models.loading import labels_of, load_classifier, load_config, load_tokenizer
from compression.models.students import count_parameters
from compression.pruning.token_counts import (
    bare_tokenizer,
    check_threshold,
    select_tokens,
    unk_fraction,
)
from compression.pruning.tokenizer_models import (
    remap_post_processor,
    special_tokens,
    tokenizer_model,
    vocab_of,
)
from inference.encoder import tokenizer_json as tokenizer_json_of

log = logging.getLogger(__name__)


def _as_json(tokenizer_json: dict[str, Any] | Tokenizer) -> dict[str, Any]:
    if isinstance(tokenizer_json, Tokenizer):
        return tokenizer_json_of(tokenizer_json)  # aliases kept
    if isinstance(tokenizer_json, dict):
        return tokenizer_json
    raise ConfigError(f"expected a tokenizer.json dict or a tokenizers.Tokenizer, "
                      f"got {type(tokenizer_json).__name__}")


def _check_unseen(unseen: str) -> str:
    if unseen not in UNSEEN_POLICIES:
        raise ConfigError(f"unseen must be one of {', '.join(UNSEEN_POLICIES)}; "
                          f"got {unseen!r}")
    return unseen


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
    min_count: int = 1,
    coverage: float | None = None,
) -> list[int]:
    """Sorted original ids to keep: those seen at least `min_count` times in `texts` (or,
    with `coverage` in (0, 1], the most frequent until they make up that share of the
    texts' token occurrences, ties at the cut kept together), every special/added token,
    (with `keep_chars`) every single-character and `##`+character token, and
    `extra_tokens`; for a BPE vocabulary also the tokens the kept ones are merged from.
    ConfigError if a required special token is missing, or for both `min_count` and
    `coverage`."""
    coverage = check_threshold(min_count, coverage)
    return select_tokens(_as_json(tokenizer_json), _check_texts(list(texts)), keep_chars,
                         extra_tokens, min_count, coverage).ids


def _nearest_rows(embeddings: torch.Tensor, queries: list[int], candidates: list[int],
                  chunk_size: int) -> list[int]:
    """For each query row, the candidate row with the highest cosine similarity (the
    first on a tie). Chunked so a 30k x 13k similarity matrix is never held at once."""
    normalize = torch.nn.functional.normalize
    pool = normalize(embeddings[candidates].float(), dim=1)
    ids = torch.tensor(candidates, dtype=torch.long, device=embeddings.device)
    best: list[int] = []
    for start in range(0, len(queries), chunk_size):
        rows = normalize(embeddings[queries[start:start + chunk_size]].float(), dim=1)
        best.extend(ids[(rows @ pool.T).argmax(dim=1)].tolist())
    return best


def nearest_kept_tokens(
    tokenizer_json: dict[str, Any] | Tokenizer,
    kept: list[int],
    embeddings: torch.Tensor,
    chunk_size: int = 4096,
) -> dict[str, int]:
    """Every vocabulary token not in `kept` -> the ORIGINAL id of the kept token whose
    row of `embeddings` (the model's input embeddings, indexed by original id) is most
    similar by cosine. A `##` piece only maps to kept `##` pieces and a word start only
    to kept word starts, so the alias sits where the dropped token would in a word;
    special and added tokens are never targets. Tokens with no candidate are left out."""
    data = _as_json(tokenizer_json)
    kind = tokenizer_model(data)
    if not kind.allows_aliases:
        raise ConfigError(f"unseen: nearest needs a WordPiece tokenizer; a {kind.kind} one "
                          f"cannot alias tokens: {kind.no_aliases_why}")
    vocab = kind.vocab(data["model"])
    if vocab and max(vocab.values()) >= embeddings.shape[0]:
        raise ConfigError(f"the tokenizer has id {max(vocab.values())} but the embedding "
                          f"matrix only {embeddings.shape[0]} rows")
    kept_set, special = set(kept), special_tokens(data)[1]
    prefix = kind.continuation_prefix(data["model"])
    never_dropped = kept_set | special
    aliases: dict[str, int] = {}
    with torch.no_grad():
        for continuation in (False, True):
            same_kind = [(t, i) for t, i in vocab.items() if t.startswith(prefix) == continuation]
            dropped = [(t, i) for t, i in same_kind if i not in never_dropped]
            candidates = sorted({i for _, i in same_kind if i in kept_set and i not in special})
            if not dropped or not candidates:
                continue
            targets = _nearest_rows(embeddings, [i for _, i in dropped], candidates,
                                    chunk_size)
            aliases.update(zip((t for t, _ in dropped), targets, strict=True))
    return aliases


def pruned_tokenizer_json(
    data: dict[str, Any],
    kept: list[int],
    aliases: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """tokenizer.json with only the `kept` tokens, renumbered 0..len(kept)-1, plus each
    `aliases` token (dropped token -> original id of a kept token) at its target's new
    id, as `nearest_kept_tokens` gives them."""
    data = copy.deepcopy(data)
    kind = tokenizer_model(data)
    new_id = {old: new for new, old in enumerate(kept)}
    data["model"] = kind.rewrite(data["model"], kept, dict(aliases or {}))
    new_vocab = kind.vocab(data["model"])
    for added in data.get("added_tokens") or []:
        added["id"] = new_id[int(added["id"])]
    # Added tokens past the model's vocabulary (DeBERTa-v3's [MASK]) have ids too.
    remap_post_processor(data.get("post_processor"), {
        **{a["content"]: a["id"] for a in data.get("added_tokens") or []}, **new_vocab})
    padding = data.get("padding")
    if padding and "pad_id" in padding:
        pad_token = padding.get("pad_token", "[PAD]")
        padding["pad_id"] = new_vocab[pad_token] if pad_token in new_vocab \
            else new_id[padding["pad_id"]]
    return data


def token_id_map(teacher_tokenizer: Path, student_tokenizer: Path) -> torch.Tensor:
    """For every teacher token id, the id of the same string in a student's pruned
    vocabulary: what lets a vocabulary-pruned student keep learning from the teacher.

    Only a "nearest" pruning keeps every string (dropped ones as aliases), so the two
    tokenizers split every text into the same pieces and differ only in ids. A "chars"
    pruning splits words differently: ConfigError, naming the tokens the student lacks."""
    teacher = vocab_of(json.loads(Path(teacher_tokenizer).read_text()))
    student = vocab_of(json.loads(Path(student_tokenizer).read_text()))
    missing = [t for t in teacher if t not in student]
    if missing:
        raise ConfigError(
            f"{student_tokenizer}: {len(missing)} of the teacher's tokens are not in the "
            f"student's vocabulary (e.g. {missing[:3]}), so the two would split texts "
            "differently; prune the vocabulary with unseen: nearest, or distil before pruning it")
    id_map = torch.zeros(max(teacher.values()) + 1, dtype=torch.long)
    for token, teacher_id in teacher.items():
        id_map[teacher_id] = student[token]
    return id_map


def prune_vocabulary(
    model_dir: Path,
    out_dir: Path,
    texts: list[str],
    keep_chars: bool = True,
    extra_tokens: Iterable[str] = (),
    unseen: str = "chars",
    min_count: int = 1,
    coverage: float | None = None,
) -> dict[str, Any]:
    """Write `out_dir/model`: `model_dir`'s classifier with only the kept tokens in its
    embedding matrix and tokenizer, and `out_dir/result.json`. Reuses a finished run.
    `unseen` ("chars" or "nearest") is what becomes of dropped tokens; see the module
    docstring. `min_count` > 1 also drops the tokens the texts use fewer times;
    `coverage` (instead) keeps the most frequent until they make up that share of the
    texts' token occurrences. The result records the count threshold used
    (`count_threshold`) and the share reached (`coverage_achieved`)."""
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    unseen = _check_unseen(unseen)
    coverage = check_threshold(min_count, coverage)
    texts = _check_texts(list(texts))
    extra_tokens = list(extra_tokens)
    key = ({
        "model": str(model_dir), "weights": checksum_or_none(model_dir / WEIGHTS_FILE),
        "tokenizer": checksum_or_none(model_dir / TOKENIZER_FILE), "keep_chars": keep_chars,
        "extra_tokens": extra_tokens, "unseen": unseen, "texts": text_digest(texts),
        "min_count": optional(min_count, absent=1),
        "coverage": optional(coverage),  # joined the key later: hashed only when set
    },)
    settings = {"keep_chars": keep_chars, "extra_tokens": extra_tokens, "unseen": unseen,
                "min_count": min_count, "coverage": coverage}
    return run_step("prune-vocab", out_dir, key,
                    lambda _digest: _prune(model_dir, out_dir, texts, settings))


def refuse_aliases(model_ref: str | Path, where: str | None = None) -> None:
    """ConfigError, one line starting with `where` (default: the model), when the
    model's tokenizer cannot take unseen="nearest" (only a WordPiece vocabulary can map
    two strings to one id)."""
    if (Path(model_ref) / TOKENIZER_FILE).is_file():
        data = _read_tokenizer_json(Path(model_ref))
    else:  # a hub id (a pipeline's pretrained teacher)
        data = tokenizer_json_of(load_tokenizer(str(model_ref)).backend_tokenizer)
    kind = tokenizer_model(data)
    if not kind.allows_aliases:
        model_type = load_config(str(model_ref)).model_type
        raise ConfigError(f"{where or model_ref}: vocabulary pruning with unseen: nearest is not "
                          f"available for {model_type} models ({kind.kind} tokenizer): "
                          f"{kind.no_aliases_why}; use unseen: chars")


def _read_tokenizer_json(model_dir: Path) -> dict[str, Any]:
    tokenizer_file = model_dir / TOKENIZER_FILE
    if not tokenizer_file.is_file():
        raise ModelError(f"{model_dir}: no {TOKENIZER_FILE}; vocabulary pruning rewrites it")
    try:
        return json.loads(tokenizer_file.read_text())
    except json.JSONDecodeError as exc:
        raise ModelError(f"{tokenizer_file}: not valid JSON") from exc


def _shrink_embeddings(model: torch.nn.Module, kept: list[int], pad_id: int) -> None:
    """Keep only the `kept` rows of the input embeddings, in their order, in place."""
    old = model.get_input_embeddings()
    embedding = torch.nn.Embedding(len(kept), old.weight.shape[1], padding_idx=pad_id)
    with torch.no_grad():
        embedding.weight.copy_(old.weight[torch.tensor(kept, dtype=torch.long)])
    model.set_input_embeddings(embedding)
    model.config.vocab_size = len(kept)
    model.config.pad_token_id = pad_id


def _new_pad_id(model: torch.nn.Module, old_pad: int, kept: list[int]) -> int:
    """The pad token's id after pruning; ConfigError where position ids count from the
    pad id (RoBERTa, MPNet) and it would move."""
    new_pad = kept.index(old_pad)
    if new_pad != old_pad and adapter_for(model).position_ids_follow_pad(model.config):
        raise ConfigError(f"{model.config.model_type} counts position ids from the pad id, "
                          f"which pruning would move from {old_pad} to {new_pad}")
    return new_pad


def _save_pruned(model: torch.nn.Module, target: Path, new_data: dict[str, Any],
                 aliased: bool, source: PreTrainedTokenizerBase) -> Path:
    """The model and its rewritten tokenizer (with `source`'s special tokens and
    inputs) in `target`; checked to load back."""
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(target))
    raw_file = target / TOKENIZER_FILE
    raw_file.write_text(json.dumps(new_data, ensure_ascii=False, indent=2))
    fast = PreTrainedTokenizerFast(tokenizer_file=str(raw_file), **source.special_tokens_map,
                                   model_input_names=list(source.model_input_names))
    fast.save_pretrained(str(target))
    if aliased:  # save_pretrained kept one arbitrary string per shared id: write them all
        raw_file.write_text(json.dumps(new_data, ensure_ascii=False, indent=2))
    make_world_readable(target)
    try:  # what every later step loads: fail here, not three steps on
        AutoTokenizer.from_pretrained(str(target))
        load_classifier(str(target))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{target}: the pruned model does not load back ({exc})") from exc
    return raw_file


def _unk_fractions(raw_file: Path, data: dict[str, Any], new_data: dict[str, Any],
                   texts: list[str]) -> tuple[float, float]:
    """The unknown token's share of the texts' tokens before and after; checks the saved
    vocabulary."""
    pruned = Tokenizer.from_file(str(raw_file))
    if pruned.get_vocab(with_added_tokens=False) != vocab_of(new_data):
        raise ModelError(f"{raw_file}: the saved tokenizer lost or moved tokens")
    pruned.no_truncation()
    pruned.no_padding()
    unk = tokenizer_model(data).unk_token(data["model"])
    return unk_fraction(bare_tokenizer(data), texts, unk), unk_fraction(pruned, texts, unk)


def _prune(model_dir: Path, out_dir: Path, texts: list[str],
           settings: dict[str, Any]) -> dict[str, Any]:
    if settings["unseen"] == "nearest":  # refused before anything is loaded or written
        refuse_aliases(model_dir)
    model = load_classifier(str(model_dir))  # ModelError unless a supported classifier
    source = load_tokenizer(str(model_dir))
    data = _read_tokenizer_json(model_dir)
    old_pad = source.pad_token_id if source.pad_token_id is not None \
        else model.config.pad_token_id or 0
    selected = select_tokens(data, texts, settings["keep_chars"], settings["extra_tokens"],
                             settings["min_count"], settings["coverage"])
    kept = sorted({old_pad, *selected.ids})
    old = model.get_input_embeddings().weight
    vocab_before, hidden = old.shape
    if kept[-1] >= vocab_before:
        raise ConfigError(f"the tokenizer has id {kept[-1]} but the model's embedding matrix "
                          f"only {vocab_before} rows")
    aliases = (nearest_kept_tokens(data, kept, old) if settings["unseen"] == "nearest"
               else {})
    new_data = pruned_tokenizer_json(data, kept, aliases)
    parameters_before = count_parameters(model)
    _shrink_embeddings(model, kept, _new_pad_id(model, old_pad, kept))
    target = out_dir / MODEL_SUBDIR
    raw_file = _save_pruned(model, target, new_data, bool(aliases), source)
    unk_before, unk_after = _unk_fractions(raw_file, data, new_data, texts)
    log.info("prune-vocab: %d -> %d tokens, unknown-token fraction %.4f", vocab_before,
             len(kept), unk_after)
    if aliases:
        by_id = {i: t for t, i in vocab_of(data).items()}
        log.info("prune-vocab: %d dropped tokens map to their nearest kept token, e.g. %s",
                 len(aliases), ", ".join(f"{t}->{by_id[i]}" for t, i in list(aliases.items())[:5]))
    return dict(
        model_dir=str(target), parent=str(model_dir), labels=labels_of(model),
        vocab_before=vocab_before, vocab_after=len(kept),
        embedding_parameters_before=vocab_before * hidden,
        embedding_parameters_after=len(kept) * hidden,
        parameters_before=parameters_before, parameters_after=count_parameters(model),
        unk_fraction_before=unk_before, unk_fraction_after=unk_after, **settings,
        unseen_mapped=len(aliases), texts=len(texts),
        count_threshold=selected.count_threshold, coverage_achieved=selected.coverage_achieved,
    )
