"""Unstructured magnitude pruning of a classifier's encoder (Zhu & Gupta 2017).

The smallest-magnitude weights of the encoder's Linear layers (attention q/k/v/output,
feed-forward in/out; optionally the word embeddings) are set to zero, either once
(`prune_model`) or gradually during training (`GradualMagnitudePruning`, a `Trainer`
callback): sparsity rises from 0 to the target along the cubic schedule
s_t = s_f * (1 - (1 - p)^3), fast at first while many weights are redundant and slowly at
the end, so the remaining weights have time to recover the accuracy.

What sparsity buys: a smaller *compressed* model. Zeros are still stored as zeros in a
dense ONNX file (fp32 or INT8), so the file on disk is exactly as large, but runs of
zeros deflate well: a 50-90 % sparse model zips (`compressed_size`) or ships through a
gzip-encoded download far smaller than a dense one.

What it does not buy: speed or memory at inference. onnxruntime's CPU kernels multiply
dense matrices, zeros included, so latency is unchanged; unlike structured pruning
(whole heads and neurons removed, matrices physically smaller), nothing here changes a
shape. Biases, LayerNorm, the pooler and the classifier are never pruned: they are tiny
and the classifier matters most to the answer.
"""

from __future__ import annotations

import math
import zlib
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from compression.config.steps import SPARSITY_SCOPES, SparsityConfig
from compression.core.errors import ConfigError
from compression.models.architectures import adapter_for


def prunable_weights(
    model: torch.nn.Module, include_embeddings: bool = False
) -> dict[str, torch.nn.Parameter]:
    """The 2-D weights worth pruning, by their name in `model`: the encoder layers' Linear
    weights (where nearly all of a BERT's compute and most of its weights are), plus the
    word embeddings when asked. Never biases, LayerNorm, pooler or classifier."""
    adapter = adapter_for(model)
    prefix, encoder = adapter.find_encoder(model)
    prefix = f"{prefix}." if prefix else ""
    weights: dict[str, torch.nn.Parameter] = {}
    if include_embeddings:
        embeddings = encoder.get_submodule(adapter.embeddings_path)
        weights[f"{prefix}{adapter.embeddings_path}.word_embeddings.weight"] = (
            embeddings.word_embeddings.weight
        )
    stack = encoder.get_submodule(adapter.layers_path)
    for name, module in stack.named_modules():
        if isinstance(module, torch.nn.Linear):
            weights[f"{prefix}{adapter.layers_path}.{name}.weight"] = module.weight
    return weights


def _keep_all_but_smallest(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Bool mask over 1-D `scores`, False at exactly the `k` smallest. Ties at the
    threshold (e.g. weights already pruned to 0) are broken by position, so the count is
    exact and a mask never prunes more than asked."""
    n = scores.numel()
    if k <= 0:
        return torch.ones(n, dtype=torch.bool, device=scores.device)
    if k >= n:
        return torch.zeros(n, dtype=torch.bool, device=scores.device)
    threshold = torch.kthvalue(scores, k).values
    keep = scores > threshold
    below = int((scores < threshold).sum())
    ties = torch.nonzero(scores == threshold).flatten()
    keep[ties[k - below:]] = True  # prune only the first k - below of the tied weights
    return keep


def _count(sparsity: float, n: int) -> int:
    """How many of `n` weights to prune: sparsity * n rounded half up."""
    return min(n, math.floor(sparsity * n + 0.5))


def magnitude_masks(
    weights: dict[str, torch.Tensor], sparsity: float, scope: str = "global"
) -> dict[str, torch.Tensor]:
    """Bool masks (True = keep) that zero the smallest-|w| fraction `sparsity`, ranked
    over all matrices together ("global") or within each ("per-layer")."""
    if not 0 <= sparsity < 1:
        raise ConfigError(f"sparsity must be in [0, 1), got {sparsity}")
    if scope not in SPARSITY_SCOPES:
        raise ConfigError(f"scope must be global or per-layer, got {scope!r}")
    if not weights:
        return {}
    with torch.no_grad():
        scores = {name: w.detach().abs().flatten().float() for name, w in weights.items()}
        if scope == "per-layer":
            return {
                name: _keep_all_but_smallest(s, _count(sparsity, s.numel())).view_as(
                    weights[name])
                for name, s in scores.items()
            }
        flat = torch.cat(list(scores.values()))
        keep = _keep_all_but_smallest(flat, _count(sparsity, flat.numel()))
        pieces = torch.split(keep, [s.numel() for s in scores.values()])
        return {name: piece.view_as(weights[name]) for name, piece in
                zip(weights, pieces, strict=True)}


def apply_masks(weights: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]) -> None:
    """Zero, in place, every weight whose mask is False (outside autograd)."""
    with torch.no_grad():
        for name, mask in masks.items():
            weights[name].masked_fill_(~mask, 0)


def cubic_sparsity(step: int, total_steps: int, config: SparsityConfig) -> float:
    """Zhu & Gupta's schedule: 0 before `start`, s_f * (1 - (1 - p)^3) with p the
    progress from `start` to `end`, exactly s_f from `end` on. Prunes hard early, while
    redundant weights are plentiful, and gently late, when each one costs accuracy."""
    if total_steps <= 0:
        raise ConfigError(f"total_steps must be >= 1, got {total_steps}")
    fraction = step / total_steps
    if fraction >= config.end:
        return config.sparsity
    if fraction <= config.start:
        return 0.0
    progress = (fraction - config.start) / (config.end - config.start)
    return config.sparsity * (1 - (1 - progress) ** 3)


def prune_model(model: torch.nn.Module, config: SparsityConfig) -> dict[str, Any]:
    """One-shot pruning to `config.sparsity` (no schedule); returns `sparsity_report`.
    Costs accuracy unless followed by fine-tuning; gradual pruning usually does better."""
    weights = prunable_weights(model, config.include_embeddings)
    apply_masks(weights, magnitude_masks(weights, config.sparsity, config.scope))
    return sparsity_report(model, config)


def sparsity_report(model: torch.nn.Module, config: SparsityConfig) -> dict[str, Any]:
    """Zero fraction of the prunable weights, overall and per matrix, and parameter counts
    (JSON-ready, for result.json): what was actually reached, not what was asked."""
    weights = prunable_weights(model, config.include_embeddings)
    per_matrix: dict[str, float] = {}
    zeros = prunable = 0
    for name, w in weights.items():
        z = int((w.detach() == 0).sum())
        zeros += z
        prunable += w.numel()
        per_matrix[name] = round(z / w.numel(), 6)
    total = sum(p.numel() for p in model.parameters())
    return {
        "target_sparsity": config.sparsity,
        "scope": config.scope,
        "include_embeddings": config.include_embeddings,
        "sparsity": round(zeros / prunable, 6) if prunable else 0.0,
        "zero_parameters": zeros,
        "prunable_parameters": prunable,
        "total_parameters": total,
        "remaining_parameters": total - zeros,
        "per_matrix": per_matrix,
    }


def compressed_size(path: str | Path, chunk_size: int = 1 << 20) -> int:
    """Bytes of `path` after deflate (zlib, level 9), streamed: what a zip archive or a
    gzip-encoded download of it costs. Sparsity leaves a dense file's size unchanged; only
    this number shows what its zeros are worth."""
    compressor = zlib.compressobj(9)
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            size += len(compressor.compress(chunk))
    return size + len(compressor.flush())


class GradualMagnitudePruning(TrainerCallback):
    """Prunes `model` along the cubic schedule while a `Trainer` trains it.

    After every optimizer step (`on_step_end`, which transformers calls after
    `optimizer.step()`, the scheduler step and `global_step += 1`, and before evaluation
    and checkpointing) it re-applies the current masks, so pruned weights stay zero
    whatever the optimizer's momentum says; every `every` steps and at the last step it
    then re-ranks the weights for the scheduled sparsity, so a pruned weight stays pruned
    (the masks are nested). The last step, and `on_train_end` (after
    `load_best_model_at_end` may have restored an earlier, less sparse checkpoint), prune
    to exactly `config.sparsity`. Resuming from a checkpoint needs nothing saved: the
    first step re-ranks, and the checkpoint's zeros rank first.
    """

    def __init__(self, model: torch.nn.Module, config: SparsityConfig) -> None:
        self.model = model
        self.config = config
        self.weights = prunable_weights(model, config.include_embeddings)
        self.masks: dict[str, torch.Tensor] | None = None  # None: not yet computed
        self.current = 0.0  # sparsity of the current masks

    def prune_to(self, sparsity: float) -> None:
        """Re-rank the weights (fetched afresh: a reloaded checkpoint may have replaced
        them) and mask to `sparsity`; 0 leaves the model dense."""
        self.weights = prunable_weights(self.model, self.config.include_embeddings)
        self.masks = (magnitude_masks(self.weights, sparsity, self.config.scope)
                      if sparsity > 0 else {})
        self.current = sparsity
        apply_masks(self.weights, self.masks)

    def on_step_end(self, args: TrainingArguments, state: TrainerState,
                    control: TrainerControl, **kwargs: Any) -> TrainerControl:
        step, total = state.global_step, state.max_steps
        if self.masks is not None:
            # First undo what the optimizer did to pruned weights: re-ranking the moved
            # values could revive some, and the masks would no longer be nested.
            apply_masks(self.weights, self.masks)
        if self.masks is None or step % self.config.every == 0 or step >= total:
            self.prune_to(cubic_sparsity(step, total, self.config))
        return control

    def on_train_end(self, args: TrainingArguments, state: TrainerState,
                     control: TrainerControl, **kwargs: Any) -> TrainerControl:
        self.prune_to(self.config.sparsity)
        return control
