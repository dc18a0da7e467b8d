"""What vocabulary pruning needs to know about each `tokenizers` model in a
tokenizer.json: WordPiece (BERT, DistilBERT, ELECTRA, MPNet), BPE (RoBERTa's byte-level
one) and Unigram (the SentencePiece vocabularies of XLM-RoBERTa and DeBERTa-v2/v3).

Each kind says how to read its vocabulary (string -> id), which pieces are the
single-character safety set, which further pieces a kept piece is built from, and how
to write the model section back with only the kept ids, renumbered in order:

- WordPiece: a dict; a word is its longest known prefix, then `##` pieces. Several
  strings may share one id, so a dropped token can alias a kept one (unseen="nearest").
- BPE: a dict plus merges. A kept token is reachable only through the merges that
  build it, so the pieces it is merged from are kept too (`closure`) and a merge stays
  only when its two parts and its result are kept. Merges are keyed by the ids of their
  parts: aliased ids would collide, so no aliases.
- Unigram: a list of (piece, score) whose positions are the ids: no aliases either.
  A seen text keeps its segmentation, since its best path's pieces are all kept and
  pruning only removes paths.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from compression.core.errors import ConfigError

BYTE_PIECE = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")  # SentencePiece's byte fallback pieces
METASPACE = "\u2581"  # "▁", SentencePiece's word-start mark
BYTE_LEVEL_SPACE = "\u0120"  # "Ġ", byte-level BPE's space before a word


class TokenizerModel:
    """The WordPiece behaviour; BPE and Unigram override where they differ."""

    kind: ClassVar[str] = "WordPiece"
    allows_aliases: ClassVar[bool] = True
    no_aliases_why: ClassVar[str] = ""

    def vocab(self, model: dict[str, Any]) -> dict[str, int]:
        if not isinstance(model.get("vocab"), dict):
            raise ConfigError(f"a {self.kind} tokenizer.json without its vocabulary")
        return model["vocab"]

    def unk_token(self, model: dict[str, Any]) -> str | None:
        return model.get("unk_token") or "[UNK]"

    def continuation_prefix(self, model: dict[str, Any]) -> str:
        return model.get("continuing_subword_prefix") or "##"

    def is_char_piece(self, token: str, model: dict[str, Any]) -> bool:
        """A single character, or one marked as a word's continuation."""
        prefix = self.continuation_prefix(model)
        return len(token) == 1 or (token.startswith(prefix) and len(token) == len(prefix) + 1)

    def closure(self, model: dict[str, Any], keep: set[int]) -> set[int]:
        """`keep` plus the ids the kept pieces cannot be produced without."""
        return keep

    def rewrite(self, model: dict[str, Any], kept: list[int],
                aliases: dict[str, int]) -> dict[str, Any]:
        """The model section with only `kept` (old ids, sorted), renumbered 0..n-1, and
        each alias (dropped string -> old id of a kept token) at its target's new id."""
        new_id = {old: new for new, old in enumerate(kept)}
        old_vocab = self.vocab(model)
        new_vocab = {tok: new_id[old] for tok, old in old_vocab.items() if old in new_id}
        for token, target in aliases.items():
            if token in new_vocab or target not in new_id:
                raise ConfigError(f"alias {token!r} -> id {target}: the token must be dropped "
                                  "and its target kept")
            new_vocab[token] = new_id[target]
        return {**model, "vocab": dict(sorted(new_vocab.items(), key=lambda item: item[1]))}


class BpeModel(TokenizerModel):
    kind = "BPE"
    allows_aliases = False
    no_aliases_why = ("its merges are keyed by the ids of their parts, so two strings on one "
                      "id would merge wrongly")

    def unk_token(self, model: dict[str, Any]) -> str | None:
        return model.get("unk_token")  # byte-level BPE has none: every byte is a piece

    def continuation_prefix(self, model: dict[str, Any]) -> str:
        return model.get("continuing_subword_prefix") or ""

    def is_char_piece(self, token: str, model: dict[str, Any]) -> bool:
        prefix = self.continuation_prefix(model)
        suffix = model.get("end_of_word_suffix") or ""
        core = token[len(prefix):] if prefix and token.startswith(prefix) else token
        core = core[: -len(suffix)] if suffix and core.endswith(suffix) else core
        return len(core) == 1

    def _merge_result(self, left: str, right: str, model: dict[str, Any]) -> str:
        prefix = self.continuation_prefix(model)
        return left + (right[len(prefix):] if prefix and right.startswith(prefix) else right)

    def _merges(self, model: dict[str, Any]) -> list[tuple[str, str]]:
        # Older files write "a b", newer ones ["a", "b"].
        return [tuple(m.split(" ", 1)) if isinstance(m, str) else (m[0], m[1])
                for m in model.get("merges") or []]

    def closure(self, model: dict[str, Any], keep: set[int]) -> set[int]:
        vocab = self.vocab(model)
        made_of: dict[str, list[tuple[str, str]]] = {}
        for left, right in self._merges(model):
            made_of.setdefault(self._merge_result(left, right, model), []).append((left, right))
        by_id = {i: t for t, i in vocab.items()}
        todo = [by_id[i] for i in keep if i in by_id]
        kept = set(keep)
        while todo:
            for part in (p for pair in made_of.get(todo.pop(), []) for p in pair):
                if part in vocab and vocab[part] not in kept:
                    kept.add(vocab[part])
                    todo.append(part)
        return kept

    def rewrite(self, model: dict[str, Any], kept: list[int],
                aliases: dict[str, int]) -> dict[str, Any]:
        out = super().rewrite(model, kept, aliases)
        vocab = out["vocab"]
        merges = [m for m, (left, right) in zip(model.get("merges") or [],
                                                self._merges(model), strict=True)
                  if left in vocab and right in vocab
                  and self._merge_result(left, right, model) in vocab]
        return {**out, "merges": merges}


class UnigramModel(TokenizerModel):
    kind = "Unigram"
    allows_aliases = False
    no_aliases_why = "its vocabulary is a list whose positions are the ids, one string each"

    def vocab(self, model: dict[str, Any]) -> dict[str, int]:
        if not isinstance(model.get("vocab"), list):
            raise ConfigError("a Unigram tokenizer.json without its vocabulary")
        return {piece: index for index, (piece, _score) in enumerate(model["vocab"])}

    def unk_token(self, model: dict[str, Any]) -> str | None:
        unk_id = model.get("unk_id")
        return None if unk_id is None else model["vocab"][unk_id][0]

    def is_char_piece(self, token: str, model: dict[str, Any]) -> bool:
        core = token[1:] if token.startswith(METASPACE) else token
        return len(core) == 1 or bool(BYTE_PIECE.match(token))

    def rewrite(self, model: dict[str, Any], kept: list[int],
                aliases: dict[str, int]) -> dict[str, Any]:
        if aliases:
            raise ConfigError(f"a Unigram vocabulary cannot alias tokens: {self.no_aliases_why}")
        new_id = {old: new for new, old in enumerate(kept)}
        unk_id = model.get("unk_id")
        pieces = model["vocab"]  # ids past it are added tokens (DeBERTa-v3's [MASK])
        return {**model, "vocab": [pieces[old] for old in kept if old < len(pieces)],
                "unk_id": None if unk_id is None else new_id[unk_id]}


KINDS: dict[str, TokenizerModel] = {m.kind: m for m in (TokenizerModel(), BpeModel(),
                                                        UnigramModel())}


def tokenizer_model(data: dict[str, Any]) -> TokenizerModel:
    """The kind of `data`'s model section; ConfigError for one pruning cannot rewrite."""
    kind = (data.get("model") or {}).get("type")
    if kind not in KINDS:
        raise ConfigError(f"vocabulary pruning needs a WordPiece, BPE or Unigram tokenizer, "
                          f"got model type {kind!r}")
    return KINDS[kind]


def vocab_of(data: dict[str, Any]) -> dict[str, int]:
    return tokenizer_model(data).vocab(data["model"])


def _post_processor_tokens(processor: dict[str, Any] | None) -> list[str]:
    if not processor:
        return []
    kind = processor.get("type")
    if kind == "Sequence":
        return [t for inner in processor.get("processors") or []
                for t in _post_processor_tokens(inner)]
    if kind == "TemplateProcessing":
        return [t for name, special in (processor.get("special_tokens") or {}).items()
                for t in special.get("tokens") or [name]]
    if kind in ("BertProcessing", "RobertaProcessing"):
        return [processor[key][0] for key in ("cls", "sep")]
    return []


def remap_post_processor(processor: dict[str, Any] | None, vocab: dict[str, int]) -> None:
    """Point the post-processor's special tokens at their new ids, in place."""
    if not processor:
        return
    kind = processor.get("type")
    if kind == "Sequence":
        for inner in processor.get("processors") or []:
            remap_post_processor(inner, vocab)
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


def special_tokens(data: dict[str, Any]) -> tuple[list[str], set[int]]:
    """The special tokens a pruned vocabulary must still hold under their strings (the
    unknown token, the post-processor's and the padding's tokens, the special added
    tokens inside the vocabulary), and the ids of every special or added token, which
    are always kept."""
    kind, model = tokenizer_model(data), data["model"]
    vocab = kind.vocab(model)
    padding = data.get("padding") or {}
    added = data.get("added_tokens") or []
    inside = max(vocab.values(), default=-1)
    required = [t for t in (kind.unk_token(model), *_post_processor_tokens(data.get(
        "post_processor")), padding.get("pad_token")) if t]
    required += [a["content"] for a in added if a.get("special") and int(a["id"]) <= inside]
    ids = {int(a["id"]) for a in added} | {vocab[t] for t in required if t in vocab}
    return list(dict.fromkeys(required)), ids


def char_piece_ids(data: dict[str, Any]) -> Iterable[int]:
    kind, model = tokenizer_model(data), data["model"]
    return (i for tok, i in kind.vocab(model).items() if kind.is_char_piece(tok, model))


def whole_words(vocab: Mapping[str, int]) -> dict[str, int]:
    """`vocab` plus each word a BPE or SentencePiece vocabulary holds only with its
    word-start mark ("Ġgood", "▁good" -> "good"), at that token's id. A WordPiece
    vocabulary has no such marks and comes back as it was."""
    words = dict(vocab)
    for token, index in vocab.items():
        if token[:1] in (BYTE_LEVEL_SPACE, METASPACE) and len(token) > 1:
            words.setdefault(token[1:], index)
    return words
