"""TinyBERT-style augmentation: nearest words from embeddings, word-swapped copies that
carry no hard label, and distillation that trains on them through the teacher only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from compression.config.steps import AugmentConfig, DataConfig, DistillConfig, TrainConfig
from compression.core.errors import ConfigError
from compression.training import losses
from compression.training.augment import UNLABELLED, augment_texts, word_neighbours
from compression.training.distill import distill

# Four words on two axes: "good" and "great" point the same way, "bad" and "awful" too.
VOCAB = {"[CLS]": 0, "good": 1, "great": 2, "bad": 3, "awful": 4, "##ly": 5, "7": 6}
EMBEDDINGS = torch.tensor([
    [0.0, 0.0, 1.0],   # [CLS]: never a candidate
    [1.0, 0.1, 0.0],   # good
    [1.0, 0.2, 0.0],   # great
    [0.1, 1.0, 0.0],   # bad
    [0.2, 1.0, 0.0],   # awful
    [1.0, 0.15, 0.0],  # ##ly: nearest to "good" by far, but a piece, not a word
    [1.0, 0.1, 0.01],  # "7": as near, but not alphabetic
])


def test_neighbours_are_nearest_whole_words_other_than_the_word_itself() -> None:
    near = word_neighbours(EMBEDDINGS, VOCAB, ["good", "bad", "unknown", "##ly"], candidates=1)
    assert near == {"good": ["great"], "bad": ["awful"]}
    near = word_neighbours(EMBEDDINGS, VOCAB, ["good"], candidates=3)
    assert near["good"][0] == "great" and len(near["good"]) == 3
    assert "good" not in near["good"]


def test_a_cased_vocabulary_swaps_words_as_written_and_never_for_their_other_case() -> None:
    vocab = {**VOCAB, "Good": 7, "Bad": 8}
    embeddings = torch.cat([EMBEDDINGS, EMBEDDINGS[1:2] * 1.01, EMBEDDINGS[3:4] * 1.01])
    near = word_neighbours(embeddings, vocab, ["good", "Good", "Bad"], candidates=1)
    assert near == {"good": ["great"], "Good": ["great"], "Bad": ["awful"]}
    out = augment_texts(["Bad movie , Good cast"], near, AugmentConfig(replace_prob=1.0))
    assert out == ["awful movie , great cast"]


def test_copies_swap_only_words_with_neighbours_and_are_deterministic() -> None:
    neighbours = {"good": ["great"], "bad": ["awful"]}
    texts = ["a good film", "a bad , bad film", "nothing here"]
    config = AugmentConfig(copies=2, replace_prob=1.0, seed=3)
    out = augment_texts(texts, neighbours, config)
    # All first copies, then all second copies; every swappable word swapped at p = 1.
    assert out == ["a great film", "a awful , awful film", "nothing here"] * 2
    assert augment_texts(texts, neighbours, config) == out
    # At a low probability a copy still differs from its source when it can.
    sparse = augment_texts(texts[:2], neighbours, AugmentConfig(replace_prob=0.01, seed=0))
    assert all(new != old for new, old in zip(sparse, texts[:2], strict=True))


@pytest.mark.parametrize("bad", [{"copies": 0}, {"replace_prob": 0.0}, {"replace_prob": 1.5},
                                 {"candidates": 0}])
def test_bad_augment_settings_are_refused(bad: dict) -> None:
    with pytest.raises(ConfigError):
        AugmentConfig(**bad)


def test_hard_label_ce_skips_unlabelled_rows() -> None:
    logits = torch.tensor([[5.0, -5.0], [-5.0, 5.0]], requires_grad=True)
    labels = torch.tensor([0, UNLABELLED])
    value = losses.hard_label_ce(logits, labels)
    torch.testing.assert_close(value, losses.hard_label_ce(logits[:1], labels[:1]))
    only_unlabelled = losses.hard_label_ce(logits, torch.tensor([UNLABELLED, UNLABELLED]))
    assert only_unlabelled.item() == 0.0  # not NaN
    only_unlabelled.backward()
    assert logits.grad is not None and not logits.grad.any()


def test_distill_with_augmentation(tmp_path: Path, teacher_dir: Path,
                                   toy_data: dict[str, Path],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    data = DataConfig(train=str(toy_data["train"]), dev=str(toy_data["dev"]),
                      label_names={"0": "negative", "1": "positive"})
    seen: list[torch.Tensor] = []
    hard_label_ce = losses.hard_label_ce

    def recording_ce(logits, labels):  # type: ignore[no-untyped-def]
        seen.append(labels.clone())
        return hard_label_ce(logits, labels)

    monkeypatch.setattr(losses, "hard_label_ce", recording_ce)
    train = TrainConfig(epochs=1, learning_rate=3e-3, batch_size=16, warmup=0.0, seed=0)
    config = DistillConfig(num_layers=1, alpha_ce=0.5, alpha_kl=0.5)
    augment = AugmentConfig(copies=2, replace_prob=0.5)
    result = distill(str(teacher_dir), data, train, config, tmp_path / "aug", augment=augment)

    n_train = sum(1 for _ in toy_data["train"].open()) - 1
    assert result["train_sentences"] == 3 * n_train
    assert result["augment"]["copies"] == 2
    labels = torch.cat(seen[: -(-3 * n_train // 16)])  # the one training epoch's batches
    assert int((labels == UNLABELLED).sum()) == 2 * n_train
    assert int((labels != UNLABELLED).sum()) == n_train
    # The augmented sentences' teacher logits went into the cache beside the originals'.
    cached = list((tmp_path / "aug").glob("teacher-logits-*.npy"))
    assert len(cached) == 1 and len(np.load(cached[0])) == 3 * n_train
    # Another augmentation is another student.
    other = distill(str(teacher_dir), data, train, config, tmp_path / "aug",
                    augment=AugmentConfig(copies=1))
    assert other["train_sentences"] == 2 * n_train
