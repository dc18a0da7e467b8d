"""Structured pruning of heads and FFN neurons: shapes, exactness, importance, reload,
export, recovery by distillation, and clear errors for impossible targets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_models import build_classifier, toy_sentences

from compression.config.steps import DataConfig, DistillConfig, PruneConfig, TrainConfig
from compression.core.errors import ConfigError
from compression.models.loading import load_classifier, load_tokenizer
from compression.pruning.structured import (
    importance_scores,
    layer_shapes,
    prune_layer,
    prune_model,
    prune_structure,
)


@pytest.fixture(scope="module")
def wide_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer classifier with 4 heads of 8 and a 64-wide FFN."""
    return build_classifier(tmp_path_factory.mktemp("wide") / "model", heads=4, seed=3)


def _batch(model_dir: Path, n: int = 8, seed: int = 5) -> dict[str, torch.Tensor]:
    texts, labels = toy_sentences(n, seed=seed)
    batch = dict(load_tokenizer(str(model_dir))(texts, padding=True, return_tensors="pt"))
    batch["labels"] = torch.tensor(labels)
    return batch


def _logits(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return model(**{k: v for k, v in batch.items() if k != "labels"}).logits


def _masked_logits(model: torch.nn.Module, batch: dict[str, torch.Tensor],
                   keep_heads: list[list[int]], keep_neurons: list[list[int]]) -> torch.Tensor:
    """The unpruned model's logits with the other heads and neurons zeroed by hooks."""
    hooks = []
    for layer, heads, neurons in zip(model.bert.encoder.layer, keep_heads, keep_neurons,
                                     strict=True):
        size = layer.attention.self.attention_head_size
        head_mask = torch.zeros(layer.attention.self.num_attention_heads)
        head_mask[heads] = 1
        neuron_mask = torch.zeros(layer.intermediate.dense.out_features)
        neuron_mask[neurons] = 1
        hooks.append(layer.attention.output.dense.register_forward_pre_hook(
            lambda _m, a, mask=head_mask.repeat_interleave(size): (a[0] * mask,)))
        hooks.append(layer.output.dense.register_forward_pre_hook(
            lambda _m, a, mask=neuron_mask: (a[0] * mask,)))
    try:
        return _logits(model, batch)
    finally:
        for hook in hooks:
            hook.remove()


def test_keeping_everything_changes_nothing(wide_dir: Path) -> None:
    model, batch = load_classifier(str(wide_dir)), _batch(wide_dir)
    before = _logits(model, batch)
    for layer in model.bert.encoder.layer:
        prune_layer(layer, [0, 1, 2, 3], list(range(64)))
    torch.testing.assert_close(_logits(model, batch), before, rtol=0, atol=1e-6)


def test_pruning_equals_zeroing_the_removed_heads_and_neurons(wide_dir: Path) -> None:
    original, pruned = load_classifier(str(wide_dir)), load_classifier(str(wide_dir))
    batch = _batch(wide_dir)
    keep_heads, keep_neurons = [[0, 3], [2]], [list(range(0, 64, 2)), list(range(10, 30))]
    for layer, heads, neurons in zip(pruned.bert.encoder.layer, keep_heads, keep_neurons,
                                     strict=True):
        prune_layer(layer, heads, neurons)
    assert layer_shapes(pruned) == [{"heads": 2, "intermediate_size": 32},
                                     {"heads": 1, "intermediate_size": 20}]
    expected = _masked_logits(original, batch, keep_heads, keep_neurons)
    torch.testing.assert_close(_logits(pruned, batch), expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(expected, _logits(original, batch), atol=1e-4)


def test_a_head_that_contributes_nothing_scores_zero_and_goes_first(wide_dir: Path) -> None:
    model = load_classifier(str(wide_dir))
    layer = model.bert.encoder.layer[0]
    size = layer.attention.self.attention_head_size
    with torch.no_grad():  # head 2 of layer 0 no longer reaches the residual stream
        layer.attention.output.dense.weight[:, 2 * size : 3 * size] = 0
        layer.output.dense.weight[:, 7] = 0  # nor does FFN neuron 7
    heads, neurons = importance_scores(model, [_batch(wide_dir), _batch(wide_dir, seed=6)])
    assert [h.shape[0] for h in heads] == [4, 4] and neurons[0].shape[0] == 64
    assert heads[0][2] == 0 and all(heads[0][h] > 0 for h in (0, 1, 3))
    assert neurons[0][7] == 0 and (neurons[0] > 0).sum() == 63
    prune_model(model, heads, neurons, heads=3, ffn=63)
    assert model.bert.encoder.layer[0].attention.self.num_attention_heads == 3
    assert model.config.pruned_layers[0] == {"heads": 3, "intermediate_size": 63}


def test_global_scope_moves_slots_to_the_layer_whose_units_matter_more(
    wide_dir: Path,
) -> None:
    model = load_classifier(str(wide_dir))
    # Layer 0's heads all matter about equally; layer 1 has one head that dominates and
    # three that barely count. Per layer each keeps 2; globally (4 in all) layer 0 keeps
    # 3 and layer 1 only its dominant head. Layer 1's raw scores are 100x larger, which
    # must not matter: each layer's scores are normalised first.
    heads = [torch.tensor([1.0, 0.9, 0.95, 0.2]), torch.tensor([1.0, 0.05, 0.04, 95.0])]
    neurons = [torch.arange(64, dtype=torch.float), 100 * torch.ones(64)]
    shapes = prune_model(model, heads, neurons, heads=2, ffn=32, scope="global")
    assert [s["heads"] for s in shapes] == [3, 1]
    assert sum(s["intermediate_size"] for s in shapes) == 64  # 32 per layer on average
    assert shapes[0]["intermediate_size"] != 32  # unequal scores -> unequal widths
    kept = model.bert.encoder.layer[1].attention.self.query.weight
    original = load_classifier(str(wide_dir)).bert.encoder.layer[1].attention.self.query
    size = original.weight.shape[0] // 4
    torch.testing.assert_close(kept, original.weight[3 * size : 4 * size])  # head 3 kept

    per_layer = prune_model(load_classifier(str(wide_dir)), heads, neurons, heads=2, ffn=32)
    assert per_layer == [{"heads": 2, "intermediate_size": 32}] * 2


def test_global_scope_keeps_one_unit_in_every_layer(wide_dir: Path) -> None:
    model = load_classifier(str(wide_dir))
    heads = [torch.tensor([1.0, 1.0, 1.0, 1.0]), torch.tensor([1e-6, 0.0, 0.0, 0.0])]
    neurons = [torch.ones(64), torch.zeros(64)]  # layer 1: every neuron scores 0
    shapes = prune_model(model, heads, neurons, heads=2, ffn=1, scope="global")
    assert shapes == [{"heads": 3, "intermediate_size": 1}, {"heads": 1, "intermediate_size": 1}]
    batch = _batch(wide_dir)
    assert torch.isfinite(_logits(model, batch)).all()


def test_prune_structure_saves_a_smaller_model_that_loads_exports_and_serves(
    tmp_path: Path, wide_dir: Path, dev_texts: list[str]
) -> None:
    from compression.evaluation.runners import OnnxRunner
    from compression.exporting.steps import ONNX_FILE, export_step
    from compression.tasks.encoding import BatchEncoder

    texts, labels = toy_sentences(96, seed=1)
    result = prune_structure(wide_dir, tmp_path / "pruned", texts, labels,
                             PruneConfig(heads=2, ffn=24, importance_batches=3, batch_size=16),
                             max_length=32)
    assert result["parameters_after"] < result["parameters_before"]
    assert result["shapes_after"] == [{"heads": 2, "intermediate_size": 24}] * 2
    model = load_classifier(result["model_dir"])
    assert layer_shapes(model) == result["shapes_after"]
    assert model.bert.encoder.layer[1].attention.self.query.weight.shape == (16, 32)
    # a re-run with the same config is reused, not recomputed
    again = prune_structure(wide_dir, tmp_path / "pruned", texts, labels,
                            PruneConfig(heads=2, ffn=24, importance_batches=3, batch_size=16),
                            max_length=32)
    assert again["finished_at"] == result["finished_at"]

    exported = export_step(Path(result["model_dir"]), tmp_path / "onnx", dev_texts[:16], 32)
    assert exported["max_abs_diff"] < 1e-4
    runner = OnnxRunner(tmp_path / "onnx" / ONNX_FILE, 1)
    encoded = BatchEncoder(tmp_path / "onnx" / "tokenizer.json", 32)(dev_texts[:4])
    expected = _logits(model, {k: torch.tensor(v) for k, v in encoded.items()}).numpy()
    np.testing.assert_allclose(runner.logits(encoded), expected, atol=1e-4)


def test_recovery_distillation_starts_from_the_pruned_student(
    tmp_path: Path, teacher_dir: Path, toy_data: dict[str, Path]
) -> None:
    from compression.training.distill import distill

    texts, labels = toy_sentences(64, seed=1)
    pruned = prune_structure(teacher_dir, tmp_path / "pruned", texts, labels,
                             PruneConfig(heads=1, ffn=16, importance_batches=2, batch_size=16),
                             max_length=32)
    data = DataConfig(train=str(toy_data["train"]), dev=str(toy_data["dev"]),
                      label_names={"0": "negative", "1": "positive"}, max_length=32)
    result = distill(str(teacher_dir), data,
                     TrainConfig(epochs=1, learning_rate=1e-3, batch_size=16, max_steps=4),
                     DistillConfig(num_layers=2), tmp_path / "recovered",
                     student_ref=pruned["model_dir"])
    recovered = load_classifier(result["model_dir"])
    assert layer_shapes(recovered) == [{"heads": 1, "intermediate_size": 16}] * 2
    before = load_classifier(pruned["model_dir"])
    changed = [not torch.equal(a, b) for a, b in zip(before.parameters(),
                                                      recovered.parameters(), strict=True)]
    assert any(changed)  # it trained


@pytest.mark.parametrize("kwargs, message", [
    ({"heads": 0}, "heads must be >= 1"),
    ({"ffn": 0}, "ffn must be >= 1"),
    ({}, "needs a target"),
    ({"heads": 2, "scope": "everywhere"}, "scope must be one of"),
    ({"layers": []}, "at least one encoder layer"),
    ({"layers": [1, 1]}, "lists one twice"),
    ({"layers": [2, 0]}, "increasing order"),
    ({"layers": [-1]}, "indices from 0"),
    ({"layers": "first,last"}, "encoder layers kept"),
])
def test_impossible_targets_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PruneConfig(**kwargs)


def test_targets_above_the_model_and_empty_layers_are_refused(wide_dir: Path) -> None:
    model = load_classifier(str(wide_dir))
    scores = ([torch.ones(4)] * 2, [torch.ones(64)] * 2)
    with pytest.raises(ConfigError, match="has only 4"):
        prune_model(model, *scores, heads=5, ffn=None)
    with pytest.raises(ConfigError, match="every head"):
        prune_layer(model.bert.encoder.layer[0], [], list(range(64)))
    with pytest.raises(ConfigError, match="distinct"):
        prune_layer(model.bert.encoder.layer[0], [1, 1], list(range(64)))


def test_optimized_export_fuses_the_narrower_attention(tmp_path: Path, wide_dir: Path,
                                                       dev_texts: list[str]) -> None:
    """The optimizer's attention fusion must be told the pruned q/k/v width (2 heads of 8
    = 16, not the hidden size 32); the parity check would catch a wrong fusion."""
    import collections

    import onnx

    from compression.exporting.steps import ONNX_FILE, export_step

    texts, labels = toy_sentences(64, seed=1)
    pruned = prune_structure(wide_dir, tmp_path / "pruned", texts, labels,
                             PruneConfig(heads=2, ffn=24, importance_batches=2, batch_size=16),
                             max_length=32)
    result = export_step(Path(pruned["model_dir"]), tmp_path / "onnx", dev_texts[:16], 32,
                         optimize=True)
    assert result["max_abs_diff"] < 1e-4
    ops = collections.Counter(n.op_type for n in onnx.load(str(tmp_path / "onnx" / ONNX_FILE))
                              .graph.node)
    assert ops["Attention"] == 2


def test_a_multi_label_model_is_scored_by_its_own_loss_and_pruned(tmp_path: Path) -> None:
    """Multi-hot float labels score heads and neurons by the binary cross-entropy the model
    trains with (class indices would not fit its sigmoid head)."""
    import json

    folder = build_classifier(tmp_path / "multi", labels=("joy", "anger", "fear"), heads=4)
    config = json.loads((folder / "config.json").read_text())
    config["problem_type"] = "multi_label_classification"
    (folder / "config.json").write_text(json.dumps(config))
    texts, _ = toy_sentences(48, seed=2)
    rows = [[float(i % 2), float(i % 3 == 0), 0.0] for i in range(48)]  # multi-hot
    result = prune_structure(folder, tmp_path / "pruned", texts, rows,
                             PruneConfig(heads=2, ffn=24, importance_batches=3, batch_size=16),
                             max_length=32)
    assert result["shapes_after"] == [{"heads": 2, "intermediate_size": 24}] * 2
    model = load_classifier(result["model_dir"])
    assert model.config.problem_type == "multi_label_classification"
    assert layer_shapes(model) == result["shapes_after"]
