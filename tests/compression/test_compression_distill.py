"""Distillation on the toy task: the loss falls, the student comes to agree with the
teacher, and the TinyBERT and narrow-student variants train and save."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_models import toy_sentences

from compression.config.steps import DataConfig, DistillConfig, TrainConfig
from compression.core.data import LabelSpace, load_split
from compression.models.loading import load_classifier, load_tokenizer
from compression.models.students import make_student
from compression.training import losses
from compression.training.distill import (
    DistillationTrainer,
    StudentWithProjection,
    distill,
    teacher_logits,
)
from compression.training.trainer import (
    PaddingCollator,
    encode,
    trainer_metrics,
    training_arguments,
)

MAX_LENGTH = 32
CHECK_TEXTS, _ = toy_sentences(64, seed=7)  # unseen in training


@pytest.fixture(scope="module")
def data(toy_data: dict[str, Path]) -> DataConfig:
    return DataConfig(train=str(toy_data["train"]), dev=str(toy_data["dev"]),
                      label_names={"0": "negative", "1": "positive"}, max_length=MAX_LENGTH)


@pytest.fixture(scope="module")
def teacher(teacher_dir: Path):  # type: ignore[no-untyped-def]
    return load_classifier(str(teacher_dir))


@pytest.fixture(scope="module")
def teacher_labels(teacher, teacher_dir: Path) -> np.ndarray:
    tokenizer = load_tokenizer(str(teacher_dir))
    return teacher_logits(teacher, tokenizer, CHECK_TEXTS, MAX_LENGTH).argmax(-1)


def agreement(model, teacher_dir: Path, teacher_labels: np.ndarray) -> float:  # type: ignore[no-untyped-def]
    tokenizer = load_tokenizer(str(teacher_dir))
    predicted = teacher_logits(model, tokenizer, CHECK_TEXTS, MAX_LENGTH).argmax(-1)
    return float(np.mean(predicted == teacher_labels))


def test_teacher_learned_the_toy_task(teacher_run: dict, teacher_labels: np.ndarray) -> None:
    assert teacher_run["dev_accuracy"] >= 0.95
    _, labels = toy_sentences(64, seed=7)
    assert np.mean(teacher_labels == np.asarray(labels)) >= 0.95


def test_loss_falls_and_agreement_rises(tmp_path: Path, teacher, teacher_dir: Path,
                                        teacher_labels: np.ndarray, data: DataConfig) -> None:
    """DistillationTrainer driven directly, logging every few steps. The student is
    narrow and random, so it starts out agreeing with the teacher only by chance."""
    torch.manual_seed(0)
    student = make_student(teacher, num_layers=1, hidden_size=16, num_heads=2)
    before = agreement(student, teacher_dir, teacher_labels)
    assert before < 0.8

    tokenizer = load_tokenizer(str(teacher_dir))
    train = load_split(data.train)
    dev = load_split(data.dev)
    space = LabelSpace.from_train(train, data.label_names)
    config = DistillConfig(num_layers=1, hidden_size=16, num_heads=2, temperature=2.0,
                           alpha_ce=0.5, alpha_kl=0.5)
    trainer = DistillationTrainer(
        teacher=teacher,
        distill=config,
        model=StudentWithProjection(student, teacher.config.hidden_size),
        args=training_arguments(tmp_path / "checkpoints",
                                TrainConfig(epochs=10, learning_rate=3e-3, batch_size=16,
                                            warmup=0.0, weight_decay=0.0, seed=0),
                                logging_steps=5),
        train_dataset=encode(tokenizer, train.texts, space.encode(train), MAX_LENGTH),
        eval_dataset=encode(tokenizer, dev.texts, space.encode(dev), MAX_LENGTH),
        data_collator=PaddingCollator(tokenizer.pad_token_id or 0),
        compute_metrics=trainer_metrics,
    )
    trainer.train()

    logged = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(logged) >= 10
    early, late = np.mean(logged[:3]), np.mean(logged[-3:])
    assert late < 0.5 * early, logged
    after = agreement(trainer.model.student, teacher_dir, teacher_labels)
    assert after >= 0.9
    assert after > before


def test_distill_one_layer_student(tmp_path: Path, teacher_dir: Path, teacher_labels: np.ndarray,
                                   data: DataConfig) -> None:
    out = tmp_path / "l1"
    train = TrainConfig(epochs=3, learning_rate=3e-3, batch_size=16, warmup=0.0, seed=0)
    config = DistillConfig(num_layers=1, temperature=2.0, alpha_ce=0.5, alpha_kl=0.5)
    result = distill(str(teacher_dir), data, train, config, out)

    student = load_classifier(result["model_dir"])
    assert student.config.num_hidden_layers == 1
    assert student.config.id2label == {0: "negative", 1: "positive"}
    assert (Path(result["model_dir"]) / "tokenizer.json").is_file()
    assert result["student_parameters"] < result["teacher_parameters"]
    assert result["teacher"] == str(teacher_dir)
    assert result["dev_accuracy"] >= 0.9
    assert agreement(student, teacher_dir, teacher_labels) >= 0.9
    # Soft targets were computed once and cached beside the run.
    assert len(list(out.glob("teacher-logits-*.npy"))) == 1
    saved = json.loads((out / "result.json").read_text())
    assert saved["config_digest"] == result["config_digest"]

    # Same config again: the finished step is reused, not retrained.
    mtime = (out / "model" / "model.safetensors").stat().st_mtime_ns
    assert distill(str(teacher_dir), data, train, config, out) == result
    assert (out / "model" / "model.safetensors").stat().st_mtime_ns == mtime


def test_distill_with_tinybert_losses(tmp_path: Path, teacher_dir: Path, data: DataConfig,
                                      teacher_labels: np.ndarray,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"hidden": 0, "attention": 0}
    hidden_mse, attention_mse = losses.hidden_mse, losses.attention_mse

    def counting_hidden(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["hidden"] += 1
        return hidden_mse(*args, **kwargs)

    def counting_attention(s_att, t_att, mask):  # type: ignore[no-untyped-def]
        calls["attention"] += 1
        assert len(s_att) == len(t_att) == 1  # one student layer, mapped to one teacher layer
        assert s_att[0].shape == t_att[0].shape  # (B, A, L, L): eager attention maps
        return attention_mse(s_att, t_att, mask)

    monkeypatch.setattr(losses, "hidden_mse", counting_hidden)
    monkeypatch.setattr(losses, "attention_mse", counting_attention)
    train = TrainConfig(epochs=3, learning_rate=3e-3, batch_size=16, warmup=0.0, seed=0)
    config = DistillConfig(num_layers=1, alpha_ce=0.5, alpha_kl=0.5, alpha_hidden=1.0,
                           alpha_attention=1.0)
    result = distill(str(teacher_dir), data, train, config, tmp_path / "tinybert")

    steps = 3 * 240 // 16
    assert calls["hidden"] >= steps and calls["attention"] >= steps
    # Hidden-state losses need the teacher live: no logits cache.
    assert not list((tmp_path / "tinybert").glob("teacher-logits-*.npy"))
    student = load_classifier(result["model_dir"])
    assert agreement(student, teacher_dir, teacher_labels) >= 0.9


def test_distill_narrow_student(tmp_path: Path, teacher_dir: Path, data: DataConfig,
                                teacher_labels: np.ndarray) -> None:
    train = TrainConfig(epochs=10, learning_rate=3e-3, batch_size=16, warmup=0.0, seed=0)
    config = DistillConfig(num_layers=1, hidden_size=16, num_heads=2, alpha_ce=0.5,
                           alpha_kl=0.5, alpha_hidden=1.0)  # hidden MSE through W_h
    result = distill(str(teacher_dir), data, train, config, tmp_path / "narrow")

    student = load_classifier(result["model_dir"])
    assert student.config.hidden_size == 16
    assert student.config.num_hidden_layers == 1
    assert student.bert.embeddings.word_embeddings.weight.shape[1] == 16
    # Only the student is saved, not the projection used in training.
    assert not any("projection" in k for k in student.state_dict())
    assert result["student_parameters"] < result["teacher_parameters"] / 2
    assert agreement(student, teacher_dir, teacher_labels) >= 0.8


def test_distill_refuses_labels_that_are_not_the_teacher_s(tmp_path: Path, teacher_dir: Path,
                                                           toy_data: dict[str, Path]) -> None:
    from compression.core.errors import ConfigError

    data = DataConfig(train=str(toy_data["train"]), dev=str(toy_data["dev"]))  # names 0/1
    with pytest.raises(ConfigError, match="label_names"):
        distill(str(teacher_dir), data, TrainConfig(max_steps=1), DistillConfig(num_layers=1),
                tmp_path / "x")


@pytest.fixture(scope="module")
def contrary_teacher(tmp_path_factory: pytest.TempPathFactory, teacher_dir: Path) -> Path:
    """The teacher with its classifier's two rows swapped: its logits are the teacher's
    reversed, so the two-teacher mean gives both classes the same logit."""
    model = load_classifier(str(teacher_dir))
    with torch.no_grad():
        model.classifier.weight.copy_(model.classifier.weight.flip(0))
        model.classifier.bias.copy_(model.classifier.bias.flip(0))
    out = tmp_path_factory.mktemp("contrary-teacher")
    model.save_pretrained(str(out))
    load_tokenizer(str(teacher_dir)).save_pretrained(str(out))
    return out


@pytest.mark.parametrize("alpha_hidden", [0.0, 1.0], ids=["cached-logits", "live-teacher"])
def test_ensemble_soft_targets_are_the_teachers_mean(
    tmp_path: Path, teacher_dir: Path, contrary_teacher: Path, data: DataConfig,
    monkeypatch: pytest.MonkeyPatch, alpha_hidden: float,
) -> None:
    targets: list[torch.Tensor] = []
    soft_target_kl = losses.soft_target_kl

    def recording_kl(student_logits, teacher_logits, temperature):  # type: ignore[no-untyped-def]
        targets.append(teacher_logits.detach().float())
        return soft_target_kl(student_logits, teacher_logits, temperature)

    monkeypatch.setattr(losses, "soft_target_kl", recording_kl)
    train = TrainConfig(epochs=1, learning_rate=3e-3, batch_size=16, warmup=0.0, seed=0)
    config = DistillConfig(num_layers=1, alpha_ce=0.5, alpha_kl=0.5, alpha_hidden=alpha_hidden)
    result = distill(str(teacher_dir), data, train, config, tmp_path / "ensemble",
                     extra_teachers=[str(contrary_teacher)])

    training_targets = torch.cat(targets[: 240 // 16])  # the training steps' soft targets
    # The teacher alone is far from undecided on the training sentences...
    alone = teacher_logits(load_classifier(str(teacher_dir)), load_tokenizer(str(teacher_dir)),
                           load_split(data.train).texts, MAX_LENGTH)
    assert np.median(np.abs(alone[:, 0] - alone[:, 1])) > 1.0
    # ...but it and its contrary twin average to a tie on every one of them.
    torch.testing.assert_close(training_targets[:, 0], training_targets[:, 1],
                               atol=2e-2, rtol=0.0)
    assert result["extra_teachers"] == [str(contrary_teacher)]
    # A tie predicts the first class: the ensemble's dev accuracy is that class's share.
    dev_labels = [line.split("\t")[1] for line in
                  Path(data.dev).read_text().splitlines()[1:] if line]
    assert result["teacher_ensemble_dev_accuracy"] == pytest.approx(
        dev_labels.count("0") / len(dev_labels))


def test_ensemble_refuses_a_teacher_with_other_labels(
    tmp_path: Path, teacher_dir: Path, data: DataConfig,
) -> None:
    from compression.core.errors import ConfigError

    other = load_classifier(str(teacher_dir))
    other.config.id2label = {0: "bad", 1: "good"}
    other.config.label2id = {"bad": 0, "good": 1}
    other.save_pretrained(str(tmp_path / "other"))
    load_tokenizer(str(teacher_dir)).save_pretrained(str(tmp_path / "other"))
    train = TrainConfig(epochs=1, learning_rate=3e-3, batch_size=16, warmup=0.0, seed=0)
    with pytest.raises(ConfigError, match="extra teacher .*labels"):
        distill(str(teacher_dir), data, train, DistillConfig(num_layers=1), tmp_path / "out",
                extra_teachers=[str(tmp_path / "other")])


def test_student_token_map_feeds_the_student_its_own_ids(tmp_path: Path, teacher,
                                                          teacher_dir: Path) -> None:
    """A copy of the teacher whose embedding rows are shuffled answers like the teacher
    only when the trainer reads its ids through the matching map."""
    import copy

    student = copy.deepcopy(teacher)
    rows = teacher.get_input_embeddings().weight.detach()
    token_map = torch.randperm(rows.shape[0], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # student row token_map[t] holds the teacher's row t
        student.get_input_embeddings().weight[token_map] = rows
    tokenizer = load_tokenizer(str(teacher_dir))
    batch = dict(tokenizer(CHECK_TEXTS[:8], padding=True, return_tensors="pt"))
    with torch.no_grad():
        expected = teacher(**batch).logits

    def student_logits(student_token_map: torch.Tensor | None) -> torch.Tensor:
        trainer = DistillationTrainer(
            teacher=teacher, distill=DistillConfig(alpha_ce=0.0, alpha_kl=1.0),
            student_token_map=student_token_map,
            model=StudentWithProjection(student, teacher.config.hidden_size),
            args=training_arguments(tmp_path / "checkpoints", TrainConfig(max_steps=1)),
            eval_dataset=encode(tokenizer, CHECK_TEXTS[:8], [0] * 8, MAX_LENGTH),
        )
        inputs = {**batch, "labels": torch.zeros(8, dtype=torch.long)}
        with torch.no_grad():
            _, outputs = trainer.compute_loss(trainer.model.eval(), inputs, return_outputs=True)
        return outputs.logits

    assert torch.allclose(student_logits(token_map), expected, atol=1e-5)
    assert not torch.allclose(student_logits(None), expected, atol=1e-3)
