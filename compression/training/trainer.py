"""What fine-tuning and distillation share: tokenized datasets, batching, metrics and
the `TrainingArguments` both hand to transformers' `Trainer`."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase, Trainer, TrainerCallback, TrainingArguments
from transformers.modeling_outputs import SequenceClassifierOutput

from compression.config.scaling import resolve_epochs
from compression.config.steps import TrainConfig
from compression.core.data import LabelledData
from compression.core.errors import TrainingStopped
from compression.core.files import CHECKPOINTS_SUBDIR
from compression.models.outputs import output_logits
from compression.tasks.classification import ENCODER_KEYS, SequenceClassification
from compression.tasks.entity_metrics import IGNORED
from compression.tasks.registry import CLASSIFICATION
from compression.training import losses

log = logging.getLogger(__name__)

__all__ = ["CHECKPOINTS_SUBDIR", "ENCODER_KEYS", "EncodedDataset", "InOrderEvaluation",
           "PaddingCollator", "StopWhen", "TaskLossTrainer", "TrainingContext",
           "TrainingStopped", "trainer_class", "dev_results", "encode", "metrics_for",
           "resumable_checkpoint", "train_or_stop", "trainer_metrics", "training_arguments"]


@dataclass(frozen=True)
class TrainingContext:
    """What a caller lends a training step beyond its config, never part of its digest:
    the data it already read from that config (not read again) and a stop check (a
    deadline) the trainer asks after every optimiser step."""

    splits: LabelledData | None = None
    should_stop: Callable[[], bool] | None = None


class StopWhen(TrainerCallback):
    """Ends training after the first step at which `should_stop()` is true. The Trainer
    then evaluates and checkpoints that step as it does an epoch's end, so the same
    step run again resumes from there."""

    def __init__(self, should_stop: Callable[[], bool]) -> None:
        self.should_stop, self.stopped = should_stop, False

    def on_step_end(self, args: TrainingArguments, state: Any, control: Any,
                    **kwargs: Any) -> Any:
        if self.should_stop():
            self.stopped = True
            control.should_training_stop = True
        return control


def train_or_stop(trainer: Trainer, checkpoint: str | None,
                  should_stop: Callable[[], bool] | None) -> None:
    """`trainer.train()` from `checkpoint`; TrainingStopped when `should_stop` ended it
    before its last step (its result must not be recorded as a finished model)."""
    stop = StopWhen(should_stop) if should_stop is not None else None
    if stop is not None:
        trainer.add_callback(stop)
    try:
        trainer.train(resume_from_checkpoint=checkpoint)
    finally:
        if stop is not None:
            trainer.remove_callback(stop)
    state = trainer.state
    if stop is not None and stop.stopped and state.global_step < state.max_steps:
        epochs = float(trainer.args.num_train_epochs)
        raise TrainingStopped(f"stopped at epoch {state.epoch:.2f} of {epochs:g}",
                              float(state.epoch or 0.0), epochs)


class EncodedDataset(torch.utils.data.Dataset):
    """Tokenized examples held as Python lists; padding happens per batch."""

    def __init__(self, features: dict[str, list[Any]]) -> None:
        self.features = features
        self.size = len(features["input_ids"])

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {key: values[index] for key, values in self.features.items()}


def encode(
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    labels: list[Any] | None,
    max_length: int,
    extra: dict[str, list[Any]] | None = None,
    task: SequenceClassification = CLASSIFICATION,
) -> EncodedDataset:
    """The task's features for `texts` (and `labels`), plus `extra` columns."""
    features = task.features(tokenizer, texts, labels, max_length)
    features.update(extra or {})
    return EncodedDataset(features)


@dataclass
class PaddingCollator:
    """Pads the encoder inputs to the longest in the batch and stacks everything else."""

    pad_token_id: int

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        longest = max(len(item["input_ids"]) for item in items)
        batch: dict[str, torch.Tensor] = {}
        for key in ENCODER_KEYS:
            if key not in items[0]:
                continue
            pad = self.pad_token_id if key == "input_ids" else 0
            rows = [list(item[key]) + [pad] * (longest - len(item[key])) for item in items]
            batch[key] = torch.tensor(rows, dtype=torch.long)
        for key in items[0]:
            if key in ENCODER_KEYS:
                continue
            values = [item[key] for item in items]
            if key == "labels" and isinstance(values[0], list):
                # Per-token tags (a list a row; multi-label rows are arrays): padded like
                # the inputs, the padding ignored.
                values = [list(v) + [IGNORED] * (longest - len(v)) for v in values]
            batch[key] = torch.tensor(np.asarray(values))
        return batch


class InOrderEvaluation:
    """A `Trainer` mixin that evaluates dev in its own order. transformers 5 groups eval
    batches by length too (`train_sampling_strategy`), and a metric that reads rows
    against the bound dev windows (question answering's) then scores the wrong rows."""

    def _get_eval_sampler(self, eval_dataset: Any) -> torch.utils.data.Sampler | None:
        return None if eval_dataset is None else torch.utils.data.SequentialSampler(eval_dataset)


class TaskLossTrainer(InOrderEvaluation, Trainer):
    """`Trainer` whose loss is the task's hard loss on `labels`: for a head whose forward
    takes no `labels` (question answering's takes start and end positions)."""

    def __init__(self, task: SequenceClassification, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.task = task

    def compute_loss(self, model: torch.nn.Module, inputs: dict[str, torch.Tensor],
                     return_outputs: bool = False, num_items_in_batch: Any = None) -> Any:
        labels = inputs.pop("labels")  # (B, 2) for spans
        logits = output_logits(model(**inputs))  # (B, L, 2)
        loss = getattr(losses, self.task.hard_loss)(logits, labels)
        return (loss, SequenceClassifierOutput(logits=logits)) if return_outputs else loss


def trainer_class(task: SequenceClassification, **kwargs: Any) -> Trainer:
    """A fine-tuning `Trainer` for `task` (its head's own loss, or the task's)."""
    if task.model_takes_labels:
        return Trainer(**kwargs)
    return TaskLossTrainer(task, **kwargs)


def _logits(predictions: Any) -> np.ndarray:
    return predictions[0] if isinstance(predictions, tuple) else predictions


def metrics_for(task: SequenceClassification) -> Callable[[Any], dict[str, float]]:
    """`Trainer`'s compute_metrics for `task` (a multi-label one at thresholds of 0.5)."""

    def compute(eval_prediction: Any) -> dict[str, float]:
        return task.metrics(_logits(eval_prediction.predictions), eval_prediction.label_ids)

    return compute


trainer_metrics = metrics_for(CLASSIFICATION)


def dev_results(trainer: Trainer, dev_set: EncodedDataset,
                task: SequenceClassification) -> dict[str, Any]:
    """The trained model's dev scores for a step's result (`dev_accuracy`, ...). A task
    with thresholds has them fitted on dev: `thresholds` (one per label), the
    `label_setup`, and the scores at those thresholds."""
    metrics = trainer.evaluate()
    results: dict[str, Any] = {f"dev_{name}": metrics.get(f"eval_{name}")
                               for name in task.metric_names}
    if task.tunes_thresholds:
        output = trainer.predict(dev_set)
        logits, labels = _logits(output.predictions), output.label_ids
        thresholds = task.fit_thresholds(logits, labels)
        scores = task.metrics(logits, labels, thresholds)
        results.update({f"dev_{name}": scores[name] for name in task.metric_names},
                       label_setup=task.label_setup, thresholds=thresholds)
    return results


def training_arguments(output_dir: Path, train: TrainConfig, logging_steps: int = 50,
                       task: SequenceClassification = CLASSIFICATION,
                       train_size: int | None = None) -> TrainingArguments:
    """Evaluate and checkpoint each epoch, keep the best by the task's dev metric
    (accuracy; macro-F1 for multi-label), log to TensorBoard, halve the batch size on
    out-of-memory, sort batches by length. `epochs: auto` becomes a number here, the one
    place a TrainConfig reaches the Trainer, from `train_size` (the training set's rows;
    `num_train_epochs` of the answer is what trains)."""
    resolved = resolve_epochs(train, train_size)
    if resolved is not train:
        log.info("epochs: auto -> %g for %d training rows at batch %d", resolved.epochs,
                 train_size, train.batch_size)
    train = resolved
    return TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=train.epochs,
        max_steps=train.max_steps,
        learning_rate=train.learning_rate,
        per_device_train_batch_size=train.batch_size,
        per_device_eval_batch_size=max(64, train.batch_size),
        warmup_steps=train.warmup,
        weight_decay=train.weight_decay,
        lr_scheduler_type="linear",
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=2,
        load_best_model_at_end=True,
        metric_for_best_model=task.best_metric,
        greater_is_better=True,
        auto_find_batch_size=True,
        # Length-grouped batches pad far less: SST-2 sentences range from 3 to 60 tokens.
        train_sampling_strategy="group_by_length",
        logging_steps=logging_steps,
        report_to=["tensorboard"],
        seed=train.seed,
        bf16=train.bf16,
        # transformers refuses bf16 without a GPU unless told the CPU is meant.
        use_cpu=train.bf16 and not torch.cuda.is_available(),
        save_only_model=False,
        remove_unused_columns=False,
        label_names=["labels"],  # the distillation wrapper hides them from introspection
        dataloader_num_workers=0,
    )


CHECKPOINT_DIGEST_FILE = "config-digest"


def latest_checkpoint(output_dir: Path) -> str | None:
    checkpoints = sorted(
        Path(output_dir).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1])
    )
    return str(checkpoints[-1]) if checkpoints else None


def resumable_checkpoint(checkpoints: Path, digest: str, resume: bool) -> str | None:
    """The checkpoint to resume from: the latest one, but only if it was written under
    the same config digest. Checkpoints of another config (an edited learning rate,
    precision or teacher), of no recorded config, or all of them when not `resume`, are
    moved aside to `stale-<n>/`: resuming them would silently train (or skip training
    of) a different model than the one asked for, and deleting them could lose work."""
    checkpoints = Path(checkpoints)
    tag = checkpoints / CHECKPOINT_DIGEST_FILE
    same = tag.is_file() and tag.read_text().strip() == digest
    stale = list(checkpoints.glob("checkpoint-*"))
    if stale and not (same and resume):
        taken = [int(p.name[6:]) for p in checkpoints.glob("stale-*") if p.name[6:].isdigit()]
        aside = checkpoints / f"stale-{max(taken, default=0) + 1}"  # never an existing one
        aside.mkdir(parents=True)
        if tag.is_file():
            shutil.move(str(tag), str(aside / CHECKPOINT_DIGEST_FILE))
        for folder in stale:
            shutil.move(str(folder), str(aside / folder.name))
        log.warning("%d checkpoint(s) of %s moved to %s and not resumed", len(stale),
                    "another config" if not same else "this config (--no-resume)", aside)
    checkpoints.mkdir(parents=True, exist_ok=True)
    tag.write_text(digest + "\n")
    return latest_checkpoint(checkpoints) if same and resume else None
