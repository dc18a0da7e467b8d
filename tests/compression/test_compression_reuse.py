"""A finished step is reused only when its inputs are the same, not merely its paths:
after a parent model changes in place (a re-run with a new config writes to the same
folder), the steps that depend on it must run again."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from tiny_models import toy_sentences

from compression.config.steps import DataConfig, DistillConfig, QuantConfig, TrainConfig
from compression.exporting.steps import ONNX_FILE, export_step, quantize_step
from compression.training.distill import distill
from compression.training.trainer import resumable_checkpoint

MAX_LENGTH = 32


def _replace_weights(model_dir: Path, source: Path) -> None:
    """Overwrite `model_dir`'s weights with `source`'s (same shape, other values), as a
    re-run of the step that made `model_dir` would."""
    shutil.copyfile(source / "model.safetensors", model_dir / "model.safetensors")


def test_export_reruns_when_the_model_changes(tmp_path: Path, teacher_dir: Path,
                                              tiny_encoder: Path, dev_texts: list[str]) -> None:
    model = tmp_path / "model"
    shutil.copytree(teacher_dir, model)
    first = export_step(model, tmp_path / "onnx", dev_texts, MAX_LENGTH)
    exported = (tmp_path / "onnx" / ONNX_FILE).read_bytes()

    _replace_weights(model, tiny_encoder)
    second = export_step(model, tmp_path / "onnx", dev_texts, MAX_LENGTH)
    assert (tmp_path / "onnx" / ONNX_FILE).read_bytes() != exported, (
        "export_step reused an ONNX file exported from the model's old weights")
    assert second["config_digest"] != first["config_digest"]


def test_quantize_reruns_when_the_source_changes(tmp_path: Path, teacher_onnx: Path,
                                                 tiny_encoder: Path) -> None:
    source = tmp_path / "fp32"
    shutil.copytree(teacher_onnx, source)
    texts, _ = toy_sentences(16, seed=3)
    config = QuantConfig.preset("dynamic")
    quantize_step(source, tmp_path / "int8", config, [], texts, MAX_LENGTH)
    quantized = (tmp_path / "int8" / ONNX_FILE).read_bytes()

    other = export_step(tiny_encoder, tmp_path / "other", texts, MAX_LENGTH)
    shutil.copyfile(other["model_path"], source / ONNX_FILE)
    quantize_step(source, tmp_path / "int8", config, [], texts, MAX_LENGTH)
    assert (tmp_path / "int8" / ONNX_FILE).read_bytes() != quantized, (
        "quantize_step reused an INT8 file made from the old fp32 model")


def test_distill_reruns_when_the_teacher_changes(tmp_path: Path, teacher_dir: Path,
                                                 tiny_encoder: Path,
                                                 toy_data: dict[str, Path]) -> None:
    teacher = tmp_path / "teacher"
    shutil.copytree(teacher_dir, teacher)
    data = DataConfig(train=str(toy_data["train"]), dev=str(toy_data["dev"]),
                      label_names={"0": "negative", "1": "positive"}, max_length=MAX_LENGTH,
                      limit_train=32, limit_dev=16)
    train = TrainConfig(max_steps=1, batch_size=16, warmup=0.0)
    config = DistillConfig(num_layers=1)
    cache = tmp_path / "cache"
    first = distill(str(teacher), data, train, config, tmp_path / "out", cache_dir=cache)
    first_logits = np.load(next(cache.glob("teacher-logits-*.npy")))

    _replace_weights(teacher, tiny_encoder)
    second = distill(str(teacher), data, train, config, tmp_path / "out", cache_dir=cache)
    assert second["config_digest"] != first["config_digest"], (
        "distill reused a student distilled from the teacher's old weights")
    # The new student learned from the new teacher's soft targets, not cached old ones.
    cached = [np.load(p) for p in cache.glob("teacher-logits-*.npy")]
    assert any(not np.allclose(logits, first_logits) for logits in cached), (
        "teacher logits were served from the cache of the teacher's old weights")


def test_distill_does_not_resume_checkpoints_of_another_config(
        tmp_path: Path, teacher_dir: Path, toy_data: dict[str, Path]) -> None:
    """A finished run leaves its last checkpoint behind. Re-running with another learning
    rate must train anew, not 'resume' that checkpoint (which would skip all training
    and save the old config's model as the new one's)."""
    data = DataConfig(train=str(toy_data["train"]), dev=str(toy_data["dev"]),
                      label_names={"0": "negative", "1": "positive"}, max_length=MAX_LENGTH,
                      limit_train=32, limit_dev=16)
    config = DistillConfig(num_layers=1)
    out = tmp_path / "out"
    slow = TrainConfig(max_steps=2, batch_size=16, warmup=0.0, learning_rate=1e-5)
    distill(str(teacher_dir), data, slow, config, out, cache_dir=tmp_path / "cache")
    slow_weights = (out / "model" / "model.safetensors").read_bytes()
    assert list((out / "checkpoints").glob("checkpoint-*")), "the run left no checkpoint"

    fast = TrainConfig(max_steps=2, batch_size=16, warmup=0.0, learning_rate=1e-2)
    distill(str(teacher_dir), data, fast, config, out, cache_dir=tmp_path / "cache")
    assert (out / "model" / "model.safetensors").read_bytes() != slow_weights, (
        "the second config resumed the first one's final checkpoint instead of training")


def test_resumable_checkpoint_only_for_the_same_digest(tmp_path: Path) -> None:
    checkpoints = tmp_path / "checkpoints"
    assert resumable_checkpoint(checkpoints, "aaa", resume=True) is None
    (checkpoints / "checkpoint-7").mkdir()
    assert resumable_checkpoint(checkpoints, "aaa", resume=True) == str(
        checkpoints / "checkpoint-7")
    assert resumable_checkpoint(checkpoints, "bbb", resume=True) is None
    assert not (checkpoints / "checkpoint-7").exists(), "another config's checkpoint stayed"
    assert (checkpoints / "stale-1" / "checkpoint-7").is_dir(), "it was lost, not moved"
    (checkpoints / "checkpoint-9").mkdir()
    assert resumable_checkpoint(checkpoints, "bbb", resume=False) is None
    assert (checkpoints / "stale-2" / "checkpoint-9").is_dir()
    assert not list(checkpoints.glob("checkpoint-*"))
    # With stale-1 removed by hand, the next move must not land in (or crash on) stale-2.
    shutil.rmtree(checkpoints / "stale-1")
    (checkpoints / "checkpoint-11").mkdir()
    assert resumable_checkpoint(checkpoints, "ccc", resume=True) is None
    assert (checkpoints / "stale-3" / "checkpoint-11").is_dir()
    assert (checkpoints / "stale-2" / "checkpoint-9").is_dir()
