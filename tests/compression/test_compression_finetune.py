"""Fine-tuning is reproducible: the seed decides everything, the fresh head included."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import torch
from safetensors.torch import load_file
from tiny_models import build_classifier

from compression.config.steps import DataConfig, TrainConfig
from compression.models.loading import load_classifier
from compression.training.finetune import finetune


def _encoder_without_head(folder: Path) -> Path:
    """A tiny pretrained-style checkpoint: the encoder alone (like all-MiniLM-L6-v2), so
    fine-tuning has to draw a new classification head."""
    classifier_dir = build_classifier(folder.parent / "with-head", seed=4)
    load_classifier(str(classifier_dir)).bert.save_pretrained(str(folder))
    for path in classifier_dir.iterdir():
        if path.name.startswith(("tokenizer", "special_tokens", "vocab")):
            shutil.copyfile(path, folder / path.name)
    return folder


def test_the_same_seed_gives_the_same_model_and_another_seed_does_not(
    tmp_path: Path, toy_data: dict[str, Path]
) -> None:
    encoder = _encoder_without_head(tmp_path / "encoder")
    data = DataConfig(train=str(toy_data["train"]), dev=str(toy_data["dev"]),
                      label_names={"0": "negative", "1": "positive"}, max_length=32)
    train = TrainConfig(epochs=1, learning_rate=3e-3, batch_size=16, warmup=0.0, seed=0,
                        max_steps=2)
    # In one process, one after the other: the second run starts from whatever state the
    # first left the random generators in, which must not matter.
    first, second = (finetune(str(encoder), data, train, tmp_path / name) for name in "ab")
    other = finetune(str(encoder), data, replace(train, seed=1), tmp_path / "c")
    weights = [load_file(str(Path(r["model_dir"]) / "model.safetensors"))
               for r in (first, second, other)]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert first["dev_accuracy"] == second["dev_accuracy"]
    assert not torch.equal(weights[0]["classifier.weight"], weights[2]["classifier.weight"])
