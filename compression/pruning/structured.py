"""Structured pruning: remove whole attention heads, feed-forward neurons and layers.

Importance follows Michel et al. (2019): a gate multiplies each head's output (and each
FFN neuron's activation), and the importance of a head or neuron is |dLoss/dgate|
summed over training batches — the first-order loss change of removing it. The least
important are cut from the weight matrices themselves (query/key/value rows, attention
output columns, FFN rows and columns), so the model is narrower and faster with any
runtime, and exports to ONNX like any other. Whole encoder layers are removed by index
(`PruneConfig.layers`), before any head or neuron is scored.

transformers no longer prunes heads itself, so a pruned model records its per-layer
shapes in `config.pruned_layers` (the format lives in `models.shapes`, which rebuilds
them before the weights are loaded). Where the heads and neurons live is the
architecture adapter's business (`models.architectures`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from compression.config.steps import PruneConfig
from compression.core.digest import config_fields, optional
from compression.core.errors import ConfigError
from compression.core.files import (
    MODEL_SUBDIR,
    WEIGHTS_FILE,
    checksum_or_none,
    copy_tokenizer_files,
    make_world_readable,
)
from compression.core.steps import run_step
from compression.models.architectures import (
    HEAD_PRUNING,
    adapter_for,
    adapter_for_layer,
    refuse_if_unsupported,
)
from compression.models.loading import labels_of, load_classifier, load_config, load_tokenizer
from compression.models.outputs import output_logits
from compression.models.shapes import SHAPES_KEY, layer_shapes
from compression.models.students import count_parameters, make_student
from compression.tasks.classification import SequenceClassification
from compression.tasks.registry import task_of
from compression.training import losses
from compression.training.trainer import PaddingCollator

log = logging.getLogger(__name__)

__all__ = ["importance_scores", "keep_layers", "layer_shapes", "prune_layer", "prune_model",
           "prune_structure"]


def prune_layer(layer: nn.Module, keep_heads: list[int], keep_neurons: list[int]) -> None:
    """Cut an encoder layer down to `keep_heads` (indices) and `keep_neurons`, in place."""
    adapter_for_layer(layer).prune_layer(layer, keep_heads, keep_neurons)


@contextmanager
def _gates(model: nn.Module) -> Iterator[tuple[list[torch.Tensor], list[torch.Tensor]]]:
    """Gates of ones on each head's output and each FFN neuron, for the length of the
    block; their gradients are the importance scores."""
    adapter = adapter_for(model)
    head_gates, neuron_gates, hooks = [], [], []
    for layer in adapter.layers(model):
        head_gate = torch.ones(adapter.heads(layer), requires_grad=True)
        neuron_gate = torch.ones(adapter.ffn_width(layer), requires_grad=True)
        size = adapter.head_size(layer)

        def gate_heads(_module: Any, args: tuple, gate: torch.Tensor = head_gate,
                       size: int = size) -> tuple:
            return (args[0] * gate.repeat_interleave(size),)  # (B, L, heads*size)

        def gate_neurons(_module: Any, args: tuple, gate: torch.Tensor = neuron_gate) -> tuple:
            return (args[0] * gate,)  # (B, L, width)

        hooks.append(adapter.attention_output(layer).register_forward_pre_hook(gate_heads))
        hooks.append(adapter.ffn_output(layer).register_forward_pre_hook(gate_neurons))
        head_gates.append(head_gate)
        neuron_gates.append(neuron_gate)
    try:
        yield head_gates, neuron_gates
    finally:
        for hook in hooks:
            hook.remove()


def importance_scores(
    model: nn.Module,
    batches: Iterable[dict[str, torch.Tensor]],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per layer: head importance (heads,) and neuron importance (width,), each the sum
    over batches of |dLoss/dgate| (batches carry encoder inputs and `labels`). The loss
    is `loss_fn` (a task's hard loss) or the one the labels' form implies."""
    model.eval()  # no dropout: the scores should measure the model as it will run
    loss_fn = loss_fn or _loss
    with _gates(model) as (head_gates, neuron_gates):
        heads = [torch.zeros_like(g) for g in head_gates]
        neurons = [torch.zeros_like(g) for g in neuron_gates]
        for batch in batches:
            inputs = {k: v for k, v in batch.items() if k != "labels"}
            loss = loss_fn(output_logits(model(**inputs)), batch["labels"])
            grads = torch.autograd.grad(loss, head_gates + neuron_gates)
            for total, grad in zip(heads + neurons, grads, strict=True):
                total += grad.abs()
    return heads, neurons


def _loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The training loss the labels' form implies: multi-hot float rows (multi-label)
    score by binary cross-entropy per label, class indices by cross-entropy."""
    if labels.is_floating_point():
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
    return torch.nn.functional.cross_entropy(logits, labels)


def _top(scores: torch.Tensor, keep: int) -> list[int]:
    return sorted(torch.topk(scores, keep).indices.tolist())


def _keep_per_layer(scores: list[torch.Tensor], keep: int | None,
                    scope: str) -> list[list[int]]:
    """The indices each layer keeps: its `keep` best (per-layer), or the `keep` x layers
    best of the whole model (global) after each layer's scores are divided by their L2
    norm, so that layers with larger gradients overall do not take every slot (Michel et
    al. 2019). Global still keeps each layer's best unit: an empty layer cannot run."""
    if keep is None:
        return [list(range(len(s))) for s in scores]
    if scope == "per-layer":
        return [_top(s, keep) for s in scores]
    normalised = [s / s.norm().clamp_min(1e-12) for s in scores]
    chosen = [{int(s.argmax())} for s in normalised]
    candidates = sorted(((float(score), layer, unit)
                         for layer, s in enumerate(normalised)
                         for unit, score in enumerate(s.tolist())
                         if unit not in chosen[layer]), reverse=True)
    for _score, layer, unit in candidates[: keep * len(scores) - len(scores)]:
        chosen[layer].add(unit)
    return [sorted(c) for c in chosen]


def prune_model(
    model: nn.Module,
    head_scores: list[torch.Tensor],
    neuron_scores: list[torch.Tensor],
    heads: int | None,
    ffn: int | None,
    scope: str = "per-layer",
) -> list[dict[str, int]]:
    """Keep the `heads` most important heads and `ffn` most important neurons (None = keep
    all) of every layer, or as many in all with scope="global" (see `PruneConfig`), in
    place; record the shapes in the config."""
    adapter = adapter_for(model)
    if heads is not None:
        refuse_if_unsupported(model.config, HEAD_PRUNING, "prune-structure")
    layers = adapter.layers(model)
    for index, layer in enumerate(layers):
        n_heads, width = adapter.heads(layer), adapter.ffn_width(layer)
        if heads is not None and heads > n_heads:
            raise ConfigError(f"heads={heads} but layer {index} has only {n_heads}")
        if ffn is not None and ffn > width:
            raise ConfigError(f"ffn={ffn} but layer {index} is only {width} wide")
    keep_heads = _keep_per_layer(head_scores, heads, scope)
    keep_neurons = _keep_per_layer(neuron_scores, ffn, scope)
    for layer, layer_heads, layer_neurons in zip(layers, keep_heads, keep_neurons,
                                                 strict=True):
        adapter.prune_layer(layer, layer_heads, layer_neurons)
    shapes = layer_shapes(model)
    setattr(model.config, SHAPES_KEY, shapes)
    return shapes


def _labelled_batches(tokenizer: PreTrainedTokenizerBase, texts: list[str], labels: list[Any],
                      max_length: int, batch_size: int,
                      count: int) -> list[dict[str, torch.Tensor]]:
    """`count` batches spread over the whole training set (not just its first rows)."""
    n = min(len(texts), count * batch_size)
    step = len(texts) / n
    picked = [int(i * step) for i in range(n)]
    out = []
    for start in range(0, n, batch_size):
        index = picked[start : start + batch_size]
        batch = tokenizer([texts[i] for i in index], truncation=True, max_length=max_length,
                          padding=True, return_tensors="pt")
        batch = {k: v for k, v in batch.items()}
        rows = [labels[i] for i in index]  # class indices, or multi-hot float rows
        batch["labels"] = torch.tensor(rows, dtype=torch.float32 if isinstance(rows[0], list)
                                       else torch.long)
        out.append(batch)
    return out


def task_batches(task: SequenceClassification, tokenizer: PreTrainedTokenizerBase,
                 texts: list[str], labels: list[Any], max_length: int, batch_size: int,
                 count: int) -> list[dict[str, torch.Tensor]]:
    """`count` batches of the task's training features (a question's windows, labelled
    with its answer's tokens), from texts spread over the whole training set."""
    n = min(len(texts), count * batch_size)
    picked = [int(i * len(texts) / n) for i in range(n)]
    features = task.features(tokenizer, [texts[i] for i in picked],
                             [labels[i] for i in picked], max_length)
    rows = [{k: v[i] for k, v in features.items()} for i in range(len(features["input_ids"]))]
    collate = PaddingCollator(tokenizer.pad_token_id or 0)
    return [collate(rows[i: i + batch_size]) for i in range(0, len(rows), batch_size)][:count]


def prune_structure(
    model_dir: Path,
    out_dir: Path,
    texts: list[str],
    labels: list[Any],
    config: PruneConfig,
    max_length: int = 64,
    data: Any = None,
) -> dict[str, Any]:
    """Write `out_dir/model`: `model_dir`'s classifier with `config`'s encoder layers, and
    heads and FFN width per layer chosen by importance on (`texts`, `labels`). Reuses a
    finished run.

    The result is pruned but not retrained; recover its accuracy with a short
    distillation from the teacher (`distill(..., student_ref=...)`).
    """
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    if len(texts) != len(labels) or not texts:
        raise ConfigError(f"structured pruning needs labelled texts; got {len(texts)} texts "
                          f"and {len(labels)} labels")
    # A question-answering data config's windows shape the batches; hashed only then.
    windows = (asdict(data.window_settings())
               if getattr(data, "task", None) == "question-answering" else None)
    key = ({"model": str(model_dir), "weights": checksum_or_none(model_dir / WEIGHTS_FILE),
            "texts": len(texts), "max_length": max_length, "windows": optional(windows)},
           config_fields(config, added_later=("scope", "layers")))
    return run_step("prune-structure", out_dir, key, lambda _digest: _prune(
        model_dir, out_dir, texts, labels, config, max_length, data))


def _prune(model_dir: Path, out_dir: Path, texts: list[str], labels: list[Any],
           config: PruneConfig, max_length: int, data: Any = None) -> dict[str, Any]:
    # Refused before anything is loaded or written.
    model_config = load_config(str(model_dir))
    if config.heads is not None:
        refuse_if_unsupported(model_config, HEAD_PRUNING, str(model_dir))
    if config.layers is not None:
        _check_layers(config.layers, adapter_for(model_config).shape(model_config).num_layers)
    model = load_classifier(str(model_dir))
    tokenizer = load_tokenizer(str(model_dir))
    before = count_parameters(model)
    shapes_before = layer_shapes(model)
    if config.layers is not None:
        model = keep_layers(model, config.layers)
    head_scores: list[torch.Tensor] = []
    shapes = layer_shapes(model)
    if config.scores_units:
        batches, loss_fn = _importance_batches(model, tokenizer, texts, labels, config,
                                               max_length, data)
        head_scores, neuron_scores = importance_scores(
            model, tqdm(batches, desc="importance", unit="batch"), loss_fn)
        shapes = prune_model(model, head_scores, neuron_scores, config.heads, config.ffn,
                             config.scope)

    target = out_dir / MODEL_SUBDIR
    model.save_pretrained(str(target))
    copy_tokenizer_files(model_dir, target)
    make_world_readable(target)
    after = count_parameters(model)
    log.info("prune-structure: %.1fM -> %.1fM parameters", before / 1e6, after / 1e6)
    return dict(
        model_dir=str(target), parent=str(model_dir), labels=labels_of(model),
        shapes_before=shapes_before, shapes_after=shapes,
        head_importance=[s.tolist() for s in head_scores],
        parameters_before=before, parameters_after=after, config=asdict(config),
    )


def keep_layers(model: nn.Module, layers: Sequence[int]) -> nn.Module:
    """A copy of `model` with only the encoder `layers` (indices, in order), each in its
    own (possibly pruned) shape; everything outside the layer stack kept as it is."""
    count = adapter_for(model).shape(model.config).num_layers
    _check_layers(layers, count)
    kept = make_student(model, list(layers))
    log.info("prune-structure: kept encoder layers %s of %d", list(layers), count)
    return kept


def _check_layers(layers: Sequence[int], count: int) -> None:
    if max(layers) >= count:
        raise ConfigError(f"layers {list(layers)}: the model has {count} encoder layers "
                          f"(0..{count - 1})")


def _importance_batches(model: nn.Module, tokenizer: PreTrainedTokenizerBase,
                        texts: list[str], labels: list[Any], config: PruneConfig,
                        max_length: int, data: Any
                        ) -> tuple[list[dict[str, torch.Tensor]], Callable | None]:
    """The training batches that score importance, and the loss they are scored by."""
    task = task_of(model.config)
    if task.per_token and task.model_takes_labels:  # tags: CE over the tagged positions
        batches = task_batches(task.for_labels(labels_of(model)), tokenizer, texts, labels,
                               max_length, config.batch_size, config.importance_batches)
        return batches, getattr(losses, task.hard_loss)
    if task.model_takes_labels:
        return _labelled_batches(tokenizer, texts, labels, max_length, config.batch_size,
                                 config.importance_batches), None
    # question answering: windows labelled with the answer's tokens, span loss
    bound = task.for_data(data) if data is not None else task
    batches = task_batches(bound, tokenizer, texts, labels, max_length,
                           config.batch_size, config.importance_batches)
    return batches, getattr(losses, task.hard_loss)
