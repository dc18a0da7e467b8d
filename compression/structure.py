"""Structured pruning: remove whole attention heads and feed-forward neurons.

Importance follows Michel et al. (2019): a gate multiplies each head's output (and each
FFN neuron's activation), and the importance of a head or neuron is |dLoss/dgate|
summed over training batches — the first-order loss change of removing it. The least
important are cut from the weight matrices themselves (query/key/value rows, attention
output columns, FFN rows and columns), so the model is narrower and faster with any
runtime, and exports to ONNX like any other.

transformers no longer prunes heads itself, so a pruned model records its per-layer
shapes in `config.pruned_layers`; `apply_layer_shapes` rebuilds them before the weights
are loaded (see `modeling.load_classifier`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import BertForSequenceClassification, PreTrainedTokenizerBase

from .configs import PruneConfig, config_digest
from .errors import ConfigError
from .steps import WEIGHTS_FILE, checksum_or_none, finished_result, write_result
from .vocab import copy_tokenizer_files

log = logging.getLogger(__name__)

MODEL_SUBDIR = "model"
SHAPES_KEY = "pruned_layers"  # config attribute: [{"heads": h, "intermediate_size": w}, ...]


def _keep_rows(linear: torch.nn.Linear, index: torch.Tensor) -> torch.nn.Linear:
    """A Linear with only the output features at `index` (rows of the weight)."""
    out = torch.nn.Linear(linear.in_features, len(index), bias=linear.bias is not None)
    with torch.no_grad():
        out.weight.copy_(linear.weight[index])
        if linear.bias is not None:
            out.bias.copy_(linear.bias[index])
    return out


def _keep_columns(linear: torch.nn.Linear, index: torch.Tensor) -> torch.nn.Linear:
    """A Linear with only the input features at `index` (columns); the bias is kept."""
    out = torch.nn.Linear(len(index), linear.out_features, bias=linear.bias is not None)
    with torch.no_grad():
        out.weight.copy_(linear.weight[:, index])
        if linear.bias is not None:
            out.bias.copy_(linear.bias)
    return out


def _head_columns(heads: Iterable[int], head_size: int) -> torch.Tensor:
    return torch.cat([torch.arange(h * head_size, (h + 1) * head_size) for h in heads])


def prune_layer(layer: torch.nn.Module, keep_heads: list[int], keep_neurons: list[int]) -> None:
    """Cut a BertLayer down to `keep_heads` (indices) and `keep_neurons`, in place."""
    attention = layer.attention.self
    n_heads = attention.num_attention_heads
    width = layer.intermediate.dense.out_features
    if not keep_heads:
        raise ConfigError("pruning every head of a layer leaves it no attention; keep >= 1")
    if not keep_neurons:
        raise ConfigError("pruning every feed-forward neuron of a layer; keep >= 1")
    if any(not 0 <= h < n_heads for h in keep_heads) or len(set(keep_heads)) != len(keep_heads):
        raise ConfigError(f"head indices must be distinct and in 0..{n_heads - 1}")
    if any(not 0 <= n < width for n in keep_neurons):
        raise ConfigError(f"neuron indices must be in 0..{width - 1}")
    columns = _head_columns(sorted(keep_heads), attention.attention_head_size)
    for name in ("query", "key", "value"):
        setattr(attention, name, _keep_rows(getattr(attention, name), columns))
    layer.attention.output.dense = _keep_columns(layer.attention.output.dense, columns)
    attention.num_attention_heads = len(keep_heads)
    attention.all_head_size = len(columns)
    neurons = torch.tensor(sorted(keep_neurons), dtype=torch.long)
    layer.intermediate.dense = _keep_rows(layer.intermediate.dense, neurons)
    layer.output.dense = _keep_columns(layer.output.dense, neurons)


def layer_shapes(model: BertForSequenceClassification) -> list[dict[str, int]]:
    """Heads and FFN width of each encoder layer, as recorded in `config.pruned_layers`."""
    return [{"heads": layer.attention.self.num_attention_heads,
             "intermediate_size": layer.intermediate.dense.out_features}
            for layer in model.bert.encoder.layer]


def apply_layer_shapes(model: BertForSequenceClassification,
                       shapes: list[dict[str, int]]) -> None:
    """Give a freshly built model the pruned shapes its saved weights have (values are
    overwritten by the weights loaded next)."""
    layers = model.bert.encoder.layer
    if len(shapes) != len(layers):
        raise ConfigError(f"{SHAPES_KEY} lists {len(shapes)} layers, the model has {len(layers)}")
    for layer, shape in zip(layers, shapes, strict=True):
        prune_layer(layer, list(range(int(shape["heads"]))),
                    list(range(int(shape["intermediate_size"]))))


@contextmanager
def _gates(model: BertForSequenceClassification) -> Iterator[tuple[list[torch.Tensor],
                                                                   list[torch.Tensor]]]:
    """Gates of ones on each head's output and each FFN neuron, for the length of the
    block; their gradients are the importance scores."""
    head_gates, neuron_gates, hooks = [], [], []
    for layer in model.bert.encoder.layer:
        attention = layer.attention.self
        head_gate = torch.ones(attention.num_attention_heads, requires_grad=True)
        neuron_gate = torch.ones(layer.intermediate.dense.out_features, requires_grad=True)
        size = attention.attention_head_size

        def gate_heads(_module: Any, args: tuple, gate: torch.Tensor = head_gate,
                       size: int = size) -> tuple:
            return (args[0] * gate.repeat_interleave(size),)  # (B, L, heads*size)

        def gate_neurons(_module: Any, args: tuple, gate: torch.Tensor = neuron_gate) -> tuple:
            return (args[0] * gate,)  # (B, L, width)

        hooks.append(layer.attention.output.dense.register_forward_pre_hook(gate_heads))
        hooks.append(layer.output.dense.register_forward_pre_hook(gate_neurons))
        head_gates.append(head_gate)
        neuron_gates.append(neuron_gate)
    try:
        yield head_gates, neuron_gates
    finally:
        for hook in hooks:
            hook.remove()


def importance_scores(
    model: BertForSequenceClassification,
    batches: Iterable[dict[str, torch.Tensor]],
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per layer: head importance (heads,) and neuron importance (width,), each the sum
    over batches of |dCE/dgate| (batches carry encoder inputs and `labels`)."""
    model.eval()  # no dropout: the scores should measure the model as it will run
    with _gates(model) as (head_gates, neuron_gates):
        heads = [torch.zeros_like(g) for g in head_gates]
        neurons = [torch.zeros_like(g) for g in neuron_gates]
        for batch in batches:
            inputs = {k: v for k, v in batch.items() if k != "labels"}
            loss = torch.nn.functional.cross_entropy(model(**inputs).logits, batch["labels"])
            grads = torch.autograd.grad(loss, head_gates + neuron_gates)
            for total, grad in zip(heads + neurons, grads, strict=True):
                total += grad.abs()
    return heads, neurons


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
    model: BertForSequenceClassification,
    head_scores: list[torch.Tensor],
    neuron_scores: list[torch.Tensor],
    heads: int | None,
    ffn: int | None,
    scope: str = "per-layer",
) -> list[dict[str, int]]:
    """Keep the `heads` most important heads and `ffn` most important neurons (None = keep
    all) of every layer, or as many in all with scope="global" (see `PruneConfig`), in
    place; record the shapes in the config."""
    for index, layer in enumerate(model.bert.encoder.layer):
        n_heads = layer.attention.self.num_attention_heads
        width = layer.intermediate.dense.out_features
        if heads is not None and heads > n_heads:
            raise ConfigError(f"heads={heads} but layer {index} has only {n_heads}")
        if ffn is not None and ffn > width:
            raise ConfigError(f"ffn={ffn} but layer {index} is only {width} wide")
    keep_heads = _keep_per_layer(head_scores, heads, scope)
    keep_neurons = _keep_per_layer(neuron_scores, ffn, scope)
    for layer, layer_heads, layer_neurons in zip(model.bert.encoder.layer, keep_heads,
                                                 keep_neurons, strict=True):
        prune_layer(layer, layer_heads, layer_neurons)
    shapes = layer_shapes(model)
    setattr(model.config, SHAPES_KEY, shapes)
    return shapes


def _labelled_batches(tokenizer: PreTrainedTokenizerBase, texts: list[str], labels: list[int],
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
        batch["labels"] = torch.tensor([labels[i] for i in index], dtype=torch.long)
        out.append(batch)
    return out


def prune_structure(
    model_dir: Path,
    out_dir: Path,
    texts: list[str],
    labels: list[int],
    config: PruneConfig,
    max_length: int = 64,
) -> dict[str, Any]:
    """Write `out_dir/model`: `model_dir`'s classifier with `config`'s heads and FFN width
    per layer, chosen by importance on (`texts`, `labels`). Reuses a finished run.

    The result is pruned but not retrained; recover its accuracy with a short
    distillation from the teacher (`distill(..., student_ref=...)`).
    """
    from .modeling import count_parameters, load_classifier, load_tokenizer

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    if len(texts) != len(labels) or not texts:
        raise ConfigError(f"structured pruning needs labelled texts; got {len(texts)} texts "
                          f"and {len(labels)} labels")
    settings = asdict(config)
    if config.scope == "per-layer":  # added later: runs pruned before it keep their digest
        del settings["scope"]
    digest = config_digest({"model": str(model_dir),
                            "weights": checksum_or_none(model_dir / WEIGHTS_FILE),
                            "texts": len(texts), "max_length": max_length}, settings)
    done = finished_result(out_dir, digest)
    if done:
        log.info("prune-structure: reusing %s (same config)", out_dir)
        return done

    model = load_classifier(str(model_dir))
    tokenizer = load_tokenizer(str(model_dir))
    before = count_parameters(model)
    shapes_before = layer_shapes(model)
    batches = _labelled_batches(tokenizer, texts, labels, max_length, config.batch_size,
                                config.importance_batches)
    head_scores, neuron_scores = importance_scores(
        model, tqdm(batches, desc="importance", unit="batch"))
    shapes = prune_model(model, head_scores, neuron_scores, config.heads, config.ffn,
                         config.scope)

    target = out_dir / MODEL_SUBDIR
    model.save_pretrained(str(target))
    copy_tokenizer_files(model_dir, target)
    for path in target.iterdir():  # transformers writes 0600; containers run as non-root
        if path.is_file():
            path.chmod(0o644)
    after = count_parameters(model)
    log.info("prune-structure: %.1fM -> %.1fM parameters", before / 1e6, after / 1e6)
    return write_result(
        out_dir, "prune-structure", digest, model_dir=str(target), parent=str(model_dir),
        labels=[model.config.id2label[i] for i in range(model.config.num_labels)],
        shapes_before=shapes_before, shapes_after=shapes,
        head_importance=[s.tolist() for s in head_scores],
        parameters_before=before, parameters_after=after, config=asdict(config),
    )
