"""Unstructured magnitude pruning: masks, schedule, the Trainer callback, the report and
the compressed size, all on a tiny random BERT (2 layers, 32 wide)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_models import build_classifier, build_tokenizer, toy_sentences
from transformers import (
    BertForSequenceClassification,
    Trainer,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)

from compression.core.digest import config_digest
from compression.core.errors import ConfigError
from compression.pruning.magnitude import (
    GradualMagnitudePruning,
    SparsityConfig,
    apply_masks,
    compressed_size,
    cubic_sparsity,
    magnitude_masks,
    prunable_weights,
    prune_model,
    sparsity_report,
)
from compression.training.trainer import PaddingCollator, encode

ENCODER_MATRICES = 6  # q, k, v, attention output, FFN in, FFN out


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_classifier(tmp_path_factory.mktemp("sparse") / "model", seed=3)


@pytest.fixture
def model(model_dir: Path) -> BertForSequenceClassification:
    """A fresh copy of the tiny random classifier for each test."""
    return BertForSequenceClassification.from_pretrained(str(model_dir))


def zero_fraction(tensor: torch.Tensor) -> float:
    return float((tensor == 0).float().mean())


# ---- which weights ---------------------------------------------------------------------

def test_prunable_weights_are_the_encoder_linear_weights(model) -> None:
    weights = prunable_weights(model)
    layers = model.config.num_hidden_layers
    assert len(weights) == ENCODER_MATRICES * layers
    assert all(name.startswith("bert.encoder.layer.") and name.endswith(".weight")
               for name in weights)
    assert all(w.dim() == 2 for w in weights.values())
    parameters = dict(model.named_parameters())
    assert all(parameters[name] is w for name, w in weights.items())

    with_embeddings = prunable_weights(model, include_embeddings=True)
    assert set(with_embeddings) - set(weights) == {"bert.embeddings.word_embeddings.weight"}


def test_prunable_weights_found_inside_a_distillation_wrapper(model) -> None:
    from compression.training.distill import StudentWithProjection

    wrapped = StudentWithProjection(model, teacher_hidden=64)
    names = list(prunable_weights(wrapped))
    assert names and all(name.startswith("student.bert.encoder.layer.") for name in names)


def test_pruning_leaves_biases_layernorm_pooler_classifier_and_embeddings_alone(model) -> None:
    prunable = set(prunable_weights(model))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    report = prune_model(model, SparsityConfig(sparsity=0.6))
    assert report["sparsity"] == pytest.approx(0.6, abs=1e-3)
    for name, parameter in model.named_parameters():
        if name in prunable:
            assert not torch.equal(parameter, before[name])
        else:
            assert torch.equal(parameter, before[name]), name
    untouched = [n for n in before if n not in prunable]
    assert any("LayerNorm" in n for n in untouched)
    assert any(n.endswith(".bias") for n in untouched)
    assert "classifier.weight" in untouched and "bert.pooler.dense.weight" in untouched
    assert "bert.embeddings.word_embeddings.weight" in untouched


def test_embeddings_pruned_only_when_included(model) -> None:
    embedding = model.bert.embeddings.word_embeddings.weight
    before = embedding.detach().clone()  # its [PAD] row starts at zero
    prune_model(model, SparsityConfig(sparsity=0.5, scope="per-layer"))
    assert torch.equal(embedding, before)
    report = prune_model(model, SparsityConfig(sparsity=0.5, scope="per-layer",
                                               include_embeddings=True))
    assert zero_fraction(embedding) == pytest.approx(0.5, abs=1 / embedding.numel())
    assert "bert.embeddings.word_embeddings.weight" in report["per_matrix"]
    for name in ("position_embeddings", "token_type_embeddings"):
        assert zero_fraction(getattr(model.bert.embeddings, name).weight) == 0


# ---- masks -----------------------------------------------------------------------------

@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.9])
def test_global_masks_hit_the_target_and_prune_the_smallest_first(model, sparsity) -> None:
    weights = prunable_weights(model)
    masks = magnitude_masks(weights, sparsity, "global")
    total = sum(w.numel() for w in weights.values())
    pruned = sum(int((~m).sum()) for m in masks.values())
    assert abs(pruned - sparsity * total) <= 0.5
    kept = torch.cat([w.detach().abs()[m] for w, m in zip(weights.values(), masks.values(),
                                                           strict=True)])
    dropped = torch.cat([w.detach().abs()[~m] for w, m in zip(weights.values(), masks.values(),
                                                              strict=True)])
    if len(kept) and len(dropped):
        assert kept.min() >= dropped.max()


def test_global_scope_prunes_matrices_unevenly(model) -> None:
    weights = prunable_weights(model)
    with torch.no_grad():  # one matrix of tiny weights: global ranking empties it first
        weights["bert.encoder.layer.0.attention.self.query.weight"].mul_(1e-3)
    masks = magnitude_masks(weights, 0.2, "global")
    fractions = {name: float((~m).float().mean()) for name, m in masks.items()}
    assert fractions["bert.encoder.layer.0.attention.self.query.weight"] == 1.0
    assert min(fractions.values()) < 0.2


@pytest.mark.parametrize("sparsity", [0.25, 0.5, 0.8])
def test_per_layer_masks_prune_the_fraction_in_every_matrix(model, sparsity) -> None:
    weights = prunable_weights(model)
    with torch.no_grad():
        weights["bert.encoder.layer.0.attention.self.query.weight"].mul_(1e-3)
    masks = magnitude_masks(weights, sparsity, "per-layer")
    for name, mask in masks.items():
        assert abs(int((~mask).sum()) - sparsity * mask.numel()) <= 0.5, name
        w = weights[name].detach().abs()
        assert w[mask].min() >= w[~mask].max()


def test_masks_are_exact_with_ties_and_nested_as_sparsity_rises(model) -> None:
    weights = prunable_weights(model)
    low = magnitude_masks(weights, 0.4, "global")
    apply_masks(weights, low)
    # 40 % of the weights are now exactly 0: a tie the ranking must break, not over-prune.
    same = magnitude_masks(weights, 0.4, "global")
    assert all(torch.equal(low[n], same[n]) for n in low)
    high = magnitude_masks(weights, 0.7, "global")
    assert all(not (high[n] & ~low[n]).any() for n in low)  # pruned stays pruned
    total = sum(m.numel() for m in high.values())
    assert abs(sum(int((~m).sum()) for m in high.values()) - 0.7 * total) <= 0.5


def test_apply_masks_zeroes_in_place_outside_autograd(model) -> None:
    weights = prunable_weights(model)
    masks = magnitude_masks(weights, 0.5, "per-layer")
    apply_masks(weights, masks)
    for name, w in weights.items():
        assert isinstance(w, torch.nn.Parameter) and w.requires_grad
        assert bool((w[~masks[name]] == 0).all()) and bool((w[masks[name]] != 0).all())


# ---- schedule --------------------------------------------------------------------------

def test_cubic_schedule() -> None:
    config = SparsityConfig(sparsity=0.8, start=0.2, end=0.6)
    total = 100
    values = [cubic_sparsity(step, total, config) for step in range(total + 1)]
    assert all(v == 0.0 for v in values[:21])
    assert all(b >= a for a, b in zip(values, values[1:], strict=False))
    assert all(v == 0.8 for v in values[60:])
    assert 0 < values[30] < values[40] < 0.8
    # Cubic: the first half of the ramp covers 7/8 of the way.
    assert values[40] == pytest.approx(0.8 * (1 - 0.5**3))
    assert cubic_sparsity(0, 10, SparsityConfig(sparsity=0.5, start=0.0, end=0.0)) == 0.5


# ---- config ----------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [
    {"sparsity": 1.0}, {"sparsity": 1.5}, {"sparsity": -0.1}, {"sparsity": "lots"},
    {"sparsity": 0.5, "scope": "per-row"}, {"sparsity": 0.5, "every": 0},
    {"sparsity": 0.5, "start": 0.8, "end": 0.5}, {"sparsity": 0.5, "end": 1.5},
    {"sparsity": 0.5, "include_embeddings": "yes"},
])
def test_bad_configs_raise_one_line_config_errors(kwargs) -> None:
    with pytest.raises(ConfigError) as info:
        SparsityConfig(**kwargs)
    assert "\n" not in str(info.value)


def test_numbers_are_normalised_so_digests_match() -> None:
    a = SparsityConfig(sparsity="0.5", start=0, end=1)
    b = SparsityConfig(sparsity=0.5, start=0.0, end=1.0)
    assert a == b and config_digest(a) == config_digest(b)
    assert isinstance(a.sparsity, float) and isinstance(a.end, float)


def test_magnitude_masks_refuse_impossible_arguments(model) -> None:
    weights = prunable_weights(model)
    with pytest.raises(ConfigError):
        magnitude_masks(weights, 1.0, "global")
    with pytest.raises(ConfigError):
        magnitude_masks(weights, 0.5, "everywhere")


# ---- callback --------------------------------------------------------------------------

def fake_state(step: int, total: int) -> TrainerState:
    state = TrainerState()
    state.global_step, state.max_steps = step, total
    return state


def test_callback_hooks_follow_the_schedule_and_keep_pruned_weights_zero(model) -> None:
    config = SparsityConfig(sparsity=0.75, start=0.0, end=0.5, every=2)
    callback = GradualMagnitudePruning(model, config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.05)
    args, control = None, TrainerControl()
    inputs = torch.randint(5, 50, (4, 12))
    labels = torch.tensor([0, 1, 0, 1])
    total, reached = 10, []
    for step in range(1, total + 1):
        model(input_ids=inputs, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        callback.on_step_end(args, fake_state(step, total), control)
        reached.append(sparsity_report(model, config)["sparsity"])
        assert reached[-1] == pytest.approx(callback.current, abs=1e-3)
    assert reached == sorted(reached) and reached[0] > 0
    assert reached[-1] == pytest.approx(0.75, abs=1e-3)

    # Further optimizer steps move pruned weights; the callback puts them back at zero.
    zeros = {n: w.detach() == 0 for n, w in prunable_weights(model).items()}
    model(input_ids=inputs, labels=labels).loss.backward()
    optimizer.step()
    assert any((w.detach()[zeros[n]] != 0).any() for n, w in prunable_weights(model).items())
    callback.on_step_end(args, fake_state(total + 1, total + 10), control)  # not a re-rank step
    for name, w in prunable_weights(model).items():
        assert bool((w.detach()[zeros[name]] == 0).all())


def test_callback_reaches_the_target_at_train_end_after_a_reload(model, model_dir) -> None:
    """`load_best_model_at_end` may restore an earlier, less sparse checkpoint."""
    config = SparsityConfig(sparsity=0.6, scope="per-layer")
    callback = GradualMagnitudePruning(model, config)
    callback.on_step_end(None, fake_state(100, 100), TrainerControl())
    assert sparsity_report(model, config)["sparsity"] == pytest.approx(0.6, abs=1e-3)
    dense = BertForSequenceClassification.from_pretrained(str(model_dir))
    model.load_state_dict(dense.state_dict())
    assert sparsity_report(model, config)["sparsity"] == 0
    callback.on_train_end(None, fake_state(100, 100), TrainerControl())
    report = sparsity_report(model, config)
    assert all(v == pytest.approx(0.6, abs=0.01) for v in report["per_matrix"].values())


class ZeroWatcher(TrainerCallback):
    """Registered after the pruning callback: records, after every optimizer step, the
    sparsity and whether every weight zero before the step is zero after it."""

    def __init__(self, model: torch.nn.Module, config: SparsityConfig) -> None:
        self.model, self.config = model, config
        self.previous: dict[str, torch.Tensor] = {}
        self.sparsities: list[float] = []
        self.revived = 0

    def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        weights = prunable_weights(self.model)
        for name, w in weights.items():
            if name in self.previous:
                self.revived += int((w.detach()[self.previous[name]] != 0).sum())
        self.previous = {n: w.detach() == 0 for n, w in weights.items()}
        self.sparsities.append(sparsity_report(self.model, self.config)["sparsity"])
        return control


def test_callback_in_a_real_trainer_run(model, model_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    assert tokenizer.vocab_size == build_tokenizer().get_vocab_size()
    texts, labels = toy_sentences(48, seed=5)
    dataset = encode(tokenizer, texts, labels, max_length=32)
    config = SparsityConfig(sparsity=0.7, start=0.1, end=0.6, every=3)
    pruning = GradualMagnitudePruning(model, config)
    watcher = ZeroWatcher(model, config)
    args = TrainingArguments(
        output_dir=str(tmp_path / "run"), max_steps=12, per_device_train_batch_size=8,
        learning_rate=1e-2, lr_scheduler_type="constant", save_strategy="no",
        eval_strategy="no", report_to=[], logging_strategy="no", use_cpu=True,
        remove_unused_columns=False, dataloader_num_workers=0, seed=0,
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=dataset,
                      data_collator=PaddingCollator(tokenizer.pad_token_id or 0),
                      callbacks=[pruning, watcher])
    trainer.train()

    report = sparsity_report(model, config)
    assert report["sparsity"] == pytest.approx(0.7, abs=1e-3)
    assert watcher.sparsities[0] == 0  # step 1 is before start
    assert watcher.sparsities == sorted(watcher.sparsities)
    assert watcher.sparsities[-1] == pytest.approx(0.7, abs=1e-3)
    assert watcher.revived == 0  # no pruned weight ever came back between steps
    assert report["zero_parameters"] == pytest.approx(0.7 * report["prunable_parameters"],
                                                      abs=1)
    assert report["remaining_parameters"] == (report["total_parameters"]
                                              - report["zero_parameters"])


# ---- report and size -------------------------------------------------------------------

def test_sparsity_report(model) -> None:
    config = SparsityConfig(sparsity=0.5, scope="per-layer")
    dense = sparsity_report(model, config)
    assert dense["sparsity"] == 0 and dense["zero_parameters"] == 0
    assert dense["total_parameters"] == sum(p.numel() for p in model.parameters())
    assert dense["prunable_parameters"] == sum(w.numel() for w in prunable_weights(model).values())
    report = prune_model(model, config)
    assert report["target_sparsity"] == 0.5 and report["scope"] == "per-layer"
    assert len(report["per_matrix"]) == ENCODER_MATRICES * model.config.num_hidden_layers
    assert all(v == pytest.approx(0.5, abs=1e-3) for v in report["per_matrix"].values())


def test_compressed_size_rewards_zeros(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    values = rng.standard_normal(100_000).astype(np.float32)
    dense, sparse = tmp_path / "dense.bin", tmp_path / "sparse.bin"
    values.tofile(dense)
    values[rng.random(values.size) < 0.8] = 0
    values.tofile(sparse)
    assert dense.stat().st_size == sparse.stat().st_size
    assert compressed_size(sparse) < 0.5 * compressed_size(dense)
    assert compressed_size(dense) > 0.8 * dense.stat().st_size  # random floats barely shrink
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    assert compressed_size(empty) > 0  # the deflate stream's header and trailer


def test_pruned_onnx_export_is_same_size_but_compresses_smaller(model, tmp_path: Path) -> None:
    from compression.exporting.onnx_export import export_onnx

    dense = export_onnx(model, tmp_path / "dense.onnx")
    prune_model(model, SparsityConfig(sparsity=0.8, include_embeddings=True))
    sparse = export_onnx(model, tmp_path / "sparse.onnx")
    assert abs(sparse.stat().st_size - dense.stat().st_size) < 0.01 * dense.stat().st_size
    assert compressed_size(sparse) < 0.8 * compressed_size(dense)
