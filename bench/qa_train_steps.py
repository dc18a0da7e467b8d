"""Seconds per training step of a pipeline config's teacher fine-tuning, measured on its
own data and settings over the first N steps, and the epoch time they project.

    python bench/qa_train_steps.py examples/squad.yaml --steps 150

The steps are those `finetune` runs (the task's windows, length-grouped batches, the
config's batch size and precision); evaluation and checkpoints are left out. The first
`--skip` steps (warm-up of the allocator and threads) are not counted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

from transformers import TrainerCallback, set_seed

from compression.config.pipeline_file import PipelineConfig
from compression.core.data import load_data
from compression.models.loading import load_encoder_for_classification, load_tokenizer
from compression.tasks.registry import task_for_data
from compression.training.trainer import (
    PaddingCollator,
    encode,
    trainer_class,
    training_arguments,
)


class _StepClock(TrainerCallback):
    def __init__(self) -> None:
        self.marks: list[float] = [time.perf_counter()]

    def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        self.marks.append(time.perf_counter())


def measure(config_file: Path, steps: int, skip: int, out_dir: Path) -> dict[str, float]:
    """Step times of the teacher's fine-tuning over its first `steps` steps."""
    cfg = PipelineConfig.load(config_file)
    splits = load_data(cfg.data)
    task = task_for_data(cfg.data).for_data(cfg.data).for_labels(list(splits.labels.names))
    tokenizer = load_tokenizer(cfg.teacher_pretrained)
    set_seed(cfg.teacher_train.seed)
    model = load_encoder_for_classification(cfg.teacher_pretrained,
                                            list(splits.labels.names), task)
    train_set = encode(tokenizer, splits.train.texts, splits.labels.encode(splits.train),
                       cfg.data.max_length, task=task)
    train = dataclasses.replace(cfg.teacher_train, max_steps=steps)
    args = dataclasses.replace(
        training_arguments(out_dir, train, task=task, train_size=len(train_set)),
        eval_strategy="no", save_strategy="no", load_best_model_at_end=False,
        report_to=[])
    clock = _StepClock()
    trainer = trainer_class(task, model=model, args=args, train_dataset=train_set,
                            data_collator=PaddingCollator(tokenizer.pad_token_id or 0),
                            callbacks=[clock])
    trainer.train()
    durations = [b - a for a, b in zip(clock.marks, clock.marks[1:], strict=False)][skip:]
    per_epoch = -(-len(train_set) // cfg.teacher_train.batch_size)
    mean = statistics.mean(durations)
    return {"questions": len(splits.train), "windows": len(train_set),
            "batch_size": cfg.teacher_train.batch_size, "max_length": cfg.data.max_length,
            "steps_timed": len(durations), "seconds_per_step_mean": round(mean, 3),
            "seconds_per_step_median": round(statistics.median(durations), 3),
            "steps_per_epoch": per_epoch,
            "projected_minutes_per_epoch": round(mean * per_epoch / 60, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", type=Path, help="a pipeline config (examples/squad.yaml)")
    parser.add_argument("--steps", type=int, default=150, help="training steps to run")
    parser.add_argument("--skip", type=int, default=5, help="first steps not counted")
    parser.add_argument("--out", type=Path, default=Path("runs/step-times"),
                        help="scratch folder for the trainer")
    args = parser.parse_args()
    print(json.dumps(measure(args.config, args.steps, args.skip, args.out), indent=2))


if __name__ == "__main__":
    main()
