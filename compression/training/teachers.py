"""The teacher's side of distillation: its logits over a split (cached beside the run,
keyed by its weights), and the soft targets of a teacher ensemble."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from compression.core.data import LabelledData, TextSplit
from compression.core.digest import text_digest
from compression.core.errors import ConfigError
from compression.core.files import WEIGHTS_FILE, checksum_or_none
from compression.models.loading import labels_of, load_classifier, load_tokenizer
from compression.tasks.registry import task_of

log = logging.getLogger(__name__)


def teacher_logits(
    teacher: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    max_length: int,
    batch_size: int = 128,
) -> np.ndarray:
    """Teacher logits for `texts` in order, computed in length-sorted batches."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), teacher.config.num_labels), dtype=np.float32)
    teacher = teacher.eval()
    with torch.inference_mode():
        for start in tqdm(range(0, len(order), batch_size), desc="teacher logits", unit="batch"):
            index = order[start : start + batch_size]
            batch = tokenizer(
                [texts[i] for i in index], truncation=True, max_length=max_length,
                padding=True, return_tensors="pt",
            )
            out[index] = teacher(**batch).logits.float().numpy()
    return out


def cached_teacher_logits(
    cache_dir: Path, teacher_ref: str, teacher_weights: str | None,
    teacher: nn.Module, tokenizer: PreTrainedTokenizerBase,
    split: TextSplit, max_length: int,
) -> np.ndarray:
    """Teacher logits over a split, computed once and kept beside the run; the key holds
    the teacher's weights checksum, so a retrained teacher gets new logits."""
    key = hashlib.sha256(
        json.dumps([teacher_ref, teacher_weights, split.source, len(split), max_length,
                    text_digest(split.texts)]).encode()
    ).hexdigest()[:16]
    path = Path(cache_dir) / f"teacher-logits-{key}.npy"
    if path.is_file():
        log.info("distill: teacher logits from cache %s", path)
        return np.load(path)
    logits = teacher_logits(teacher, tokenizer, split.texts, max_length)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, logits)
    return logits


def load_extra_teachers(
    refs: Sequence[str], teacher: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
) -> list[tuple[str, nn.Module]]:
    """The other members of a teacher ensemble. Each must read the main teacher's token ids
    and predict its labels: their soft targets are averaged over the same inputs and classes."""
    vocab = tokenizer.get_vocab()
    loaded = []
    for ref in refs:
        other = load_classifier(ref)
        if labels_of(other) != labels_of(teacher):
            raise ConfigError(f"extra teacher {ref}: labels {labels_of(other)} are not the "
                              f"teacher's {labels_of(teacher)}")
        if load_tokenizer(ref).get_vocab() != vocab:
            raise ConfigError(f"extra teacher {ref}: its vocabulary is not the teacher's; "
                              "an ensemble must read the same token ids")
        loaded.append((ref, other))
    return loaded


def mean_logits(
    teachers: Sequence[tuple[str, nn.Module]],
    tokenizer: PreTrainedTokenizerBase, split: TextSplit, max_length: int, cache_dir: Path,
) -> np.ndarray:
    """Mean logits of `teachers` over `split`, each teacher's cached like the main one's."""
    return np.mean([
        cached_teacher_logits(cache_dir, ref, checksum_or_none(Path(ref) / WEIGHTS_FILE), model,
                              tokenizer, split, max_length)
        for ref, model in teachers
    ], axis=0).astype(np.float32)




@dataclass
class SoftTargets:
    """What the student learns from besides labels: extra dataset columns (`teacher_logits`
    cached, `extra_teacher_logits` of an ensemble), the ensemble's share of a live
    teacher's targets, and the ensemble's dev accuracy (None without one)."""

    columns: dict[str, list[Any]] = field(default_factory=dict)
    ensemble_weight: float = 0.0
    ensemble_dev_accuracy: float | None = None


def soft_targets(teacher_ref: str, teacher: nn.Module, tokenizer: PreTrainedTokenizerBase,
                 splits: LabelledData, train_split: TextSplit, max_length: int,
                 cache: Path, live_teacher: bool,
                 extra_teachers: Sequence[str]) -> SoftTargets:
    """The teacher's cached logits over `train_split` (unless it runs live), mixed with the
    mean logits of `extra_teachers` when there is an ensemble."""
    targets = SoftTargets()
    if not live_teacher:
        targets.columns["teacher_logits"] = list(cached_teacher_logits(
            cache, teacher_ref, checksum_or_none(Path(teacher_ref) / WEIGHTS_FILE), teacher,
            tokenizer, train_split, max_length,
        ))
    if not extra_teachers:
        return targets
    others = load_extra_teachers(extra_teachers, teacher, tokenizer)
    # The soft targets become the ensemble's mean logits: the main teacher's share is
    # 1/(1+k), mixed in per batch when it runs live.
    weight = targets.ensemble_weight = len(others) / (1 + len(others))
    extra_train = mean_logits(others, tokenizer, train_split, max_length, cache)
    if live_teacher:
        targets.columns["extra_teacher_logits"] = list(extra_train)
    else:
        targets.columns["teacher_logits"] = list(
            (1 - weight) * np.asarray(targets.columns["teacher_logits"])
            + weight * extra_train)
    dev_split = splits.dev
    dev_mix = ((1 - weight) * teacher_logits(teacher, tokenizer, dev_split.texts, max_length)
               + weight * mean_logits(others, tokenizer, dev_split, max_length, cache))
    targets.ensemble_dev_accuracy = task_of(teacher.config).metrics(
        dev_mix, np.asarray(splits.labels.encode(dev_split)))["accuracy"]
    log.info("distill: %d-teacher ensemble, dev accuracy %.4f", 1 + len(others),
             targets.ensemble_dev_accuracy)
    return targets
