"""Knowledge distillation: teacher classifier -> smaller student, through `Trainer`.

The student is initialised DistilBERT-style (embeddings and a subset of the teacher's
layers copied) or, when narrower, randomly, or starts from an earlier (pruned) student.
The loss (`training.distillation_trainer`) mixes hard labels, temperature-scaled soft
targets, hidden-state cosine and TinyBERT's intermediate-layer losses.

`distill` is the cached step; the phases below it each do one thing: load, build the
student, prepare it (rank, QAT), choose the training texts, train, save.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase, set_seed

from compression.config.steps import (
    AugmentConfig,
    DataConfig,
    DistillConfig,
    QatConfig,
    SparsityConfig,
    TrainConfig,
    check_qat_training,
)
from compression.core.data import LabelledData, TextSplit, load_data
from compression.core.digest import OMITTED, optional
from compression.core.errors import ConfigError
from compression.core.files import (
    CHECKPOINTS_SUBDIR,
    MODEL_SUBDIR,
    TOKENIZER_FILE,
    WEIGHTS_FILE,
    checksum_or_none,
    copy_tokenizer_files,
)
from compression.core.steps import run_step
from compression.models.architectures import adapter_for
from compression.models.loading import labels_of, load_classifier, load_tokenizer
from compression.models.low_rank import factorize_word_embeddings, merge_word_embeddings, rank_of
from compression.models.students import count_parameters, make_student
from compression.pruning.magnitude import GradualMagnitudePruning, sparsity_report
from compression.pruning.tokenizer_models import whole_words
from compression.pruning.vocabulary import token_id_map
from compression.quantization.qat import attach_fake_quant, calibrate_ranges, detach_fake_quant
from compression.tasks.classification import SequenceClassification
from compression.tasks.registry import task_for_data, task_of
from compression.training.augment import augmented_texts_for
from compression.training.distillation_trainer import (
    DistillationTrainer,
    StudentWithProjection,
    layer_map,
)
from compression.training.teachers import SoftTargets, soft_targets, teacher_logits
from compression.training.trainer import (
    PaddingCollator,
    TrainingContext,
    dev_results,
    encode,
    metrics_for,
    resumable_checkpoint,
    train_or_stop,
    training_arguments,
)

log = logging.getLogger(__name__)

__all__ = ["DistillationTrainer", "StudentOptions", "StudentWithProjection", "distill",
           "layer_map", "teacher_logits"]


@dataclass(frozen=True)
class StudentOptions:
    """How the student is made and trained beyond the distillation config; see `distill`."""

    student_ref: str | None = None
    sparsity: SparsityConfig | None = None
    quantization_aware: QatConfig | None = None
    augment: AugmentConfig | None = None
    embedding_rank: int | None = None
    extra_teachers: tuple[str, ...] = ()

    def key_parts(self) -> tuple[Any, ...]:
        """The options' part of the reuse key. Each joined the key after runs existed, so
        each is there only when set: older run folders keep their digest."""
        qat = self.quantization_aware
        return (optional(self.sparsity), optional(qat.digest_fields() if qat else None),
                optional(self.augment),
                optional({"embedding_rank": self.embedding_rank}
                         if self.embedding_rank is not None else None))


def distill(
    teacher_ref: str,
    data: DataConfig,
    train: TrainConfig,
    config: DistillConfig,
    output_dir: Path,
    resume: bool = True,
    cache_dir: Path | None = None,
    student_ref: str | None = None,
    sparsity: SparsityConfig | None = None,
    quantization_aware: QatConfig | None = None,
    augment: AugmentConfig | None = None,
    embedding_rank: int | None = None,
    extra_teachers: Sequence[str] = (),
    context: TrainingContext | None = None,
) -> dict[str, Any]:
    """Distil a student from the classifier at `teacher_ref` into `output_dir/model`.

    With `student_ref` the student starts from that classifier (a pruned student being
    recovered) instead of copying teacher layers; `config`'s shape fields are then unused.
    A student whose vocabulary was pruned with unseen="nearest" reads the teacher's token
    ids through `pruning.vocabulary.token_id_map` and keeps its own tokenizer.
    With `sparsity` the student's encoder weights are magnitude-pruned on a gradual
    schedule while it trains (`pruning.magnitude`). With `quantization_aware` it trains
    under simulated static-INT8 rounding and is saved as a plain float model
    (`quantization.qat`). With `augment` the training set also holds word-swapped copies
    of every sentence, learnt from the teacher's outputs only (`training.augment`).
    With `embedding_rank` (or a student that was trained with one) the word embeddings
    train as two factors of that rank (`models.low_rank`).
    With `extra_teachers` (fine-tuned classifiers sharing the teacher's vocabulary and
    labels) the soft targets are the mean logits of the whole ensemble; hidden-state losses
    still follow `teacher_ref` alone.
    `context`: the splits of `data` already read, and a stop check (TrainingStopped, no
    result recorded, when it ends training early; run again, it resumes).
    """
    options = StudentOptions(student_ref, sparsity, quantization_aware, augment,
                             embedding_rank, tuple(extra_teachers))
    if quantization_aware is not None:  # refused before anything is loaded
        check_qat_training(train, sparsity, embedding_rank)
    output_dir = Path(output_dir)
    # The checksums: a retrained teacher (or student start) means a new student.
    return run_step("distill", output_dir, _key(teacher_ref, data, train, config, options),
                    lambda digest: _distill(teacher_ref, data, train, config, output_dir,
                                            options, digest, resume, cache_dir,
                                            context or TrainingContext()))


def _key(teacher_ref: str, data: DataConfig, train: TrainConfig, config: DistillConfig,
         options: StudentOptions) -> tuple[Any, ...]:
    student = options.student_ref
    source = {
        "teacher": teacher_ref, "weights": checksum_or_none(Path(teacher_ref) / WEIGHTS_FILE),
        "student": student if student is not None else OMITTED,
        "student_weights": (checksum_or_none(Path(student) / WEIGHTS_FILE)
                            if student is not None else OMITTED),
        "extra_teachers": optional([[ref, checksum_or_none(Path(ref) / WEIGHTS_FILE)]
                                    for ref in options.extra_teachers], absent=[]),
    }
    return (source, data, train, config, *options.key_parts())


def _load_teacher_and_data(teacher_ref: str, data: DataConfig, config: DistillConfig,
                           options: StudentOptions, splits: LabelledData | None
                           ) -> tuple[nn.Module, PreTrainedTokenizerBase, LabelledData]:
    teacher = load_classifier(teacher_ref)
    tokenizer = load_tokenizer(teacher_ref)
    n_teacher = adapter_for(teacher).shape(teacher.config).num_layers
    if options.student_ref is None and config.num_layers > n_teacher:
        raise ConfigError(
            f"the student has {config.num_layers} layers but the teacher only {n_teacher}"
        )
    splits = splits or load_data(data)
    if list(splits.labels.names) != labels_of(teacher):
        raise ConfigError(
            f"the data's labels {list(splits.labels.names)} are not the teacher's "
            f"{labels_of(teacher)}; set label_names to match"
        )
    if task_of(teacher.config) is not task_for_data(data):
        raise ConfigError(f"{teacher_ref}: a {task_of(teacher.config).label_setup} teacher "
                          f"cannot teach {task_for_data(data).label_setup} data; set "
                          "data's multi_label or task to match")
    _check_token_options(task_of(teacher.config), options)
    return teacher, tokenizer, splits


def _check_token_options(task: SequenceClassification, options: StudentOptions) -> None:
    """What a token classifier's distillation does not do yet, refused with one line."""
    if not task.per_token:
        return
    for name, value in (("augment", options.augment), ("ensemble", options.extra_teachers)):
        if value:
            raise ConfigError(f"{name}: not for {task.name} (yet)")


def _starting_student(teacher_ref: str, teacher: nn.Module, config: DistillConfig,
                      train: TrainConfig, options: StudentOptions
                      ) -> tuple[nn.Module, torch.Tensor | None]:
    """The student to train, and the teacher-id -> student-id map of a student whose
    vocabulary was pruned (None otherwise)."""
    student_ref = options.student_ref
    if student_ref is None:
        set_seed(train.seed)  # a narrower student's random weights come from the seed
        return make_student(
            teacher, list(config.layers) if config.layers else None, config.num_layers,
            config.hidden_size, config.num_heads, config.intermediate_size,
        ), None
    student = load_classifier(student_ref)
    if labels_of(student) != labels_of(teacher):
        raise ConfigError(f"{student_ref}: labels {labels_of(student)} are not the "
                          f"teacher's {labels_of(teacher)}")
    vocab = adapter_for(student).shape(student.config).vocab_size
    teacher_vocab = adapter_for(teacher).shape(teacher.config).vocab_size
    if vocab == teacher_vocab:
        return student, None
    if options.quantization_aware is not None:  # its ranges are calibrated on teacher ids
        raise ConfigError(f"{student_ref}: its vocabulary was pruned; train it "
                          "quantization-aware before pruning the vocabulary")
    # Its vocabulary was pruned: it reads the teacher's token ids through a map, which
    # only a pruning that kept every token string allows.
    token_map = token_id_map(Path(teacher_ref) / TOKENIZER_FILE,
                             Path(student_ref) / TOKENIZER_FILE)
    log.info("distill: the student's vocabulary was pruned (%d of %d rows); it reads "
             "the teacher's token ids through their strings", vocab, teacher_vocab)
    return student, token_map


def _prepare_student(student: nn.Module, teacher: nn.Module, config: DistillConfig,
                     train: TrainConfig, options: StudentOptions,
                     tokenizer: PreTrainedTokenizerBase, texts: list[str],
                     max_length: int) -> int | None:
    """Low-rank embeddings, eager attention and simulated INT8, in place; the rank."""
    # A factorised student stays factorised.
    rank = options.embedding_rank if options.embedding_rank is not None else rank_of(student)
    qat = options.quantization_aware
    if qat is not None:
        check_qat_training(train, options.sparsity, rank)  # a student_ref can carry a rank
    if rank is not None:
        factorize_word_embeddings(student, rank)
    log.info("distill: teacher %.1fM parameters -> student %.1fM",
             count_parameters(teacher) / 1e6, count_parameters(student) / 1e6)
    if config.alpha_attention > 0:
        # SDPA kernels return no attention maps; the attention loss needs them.
        teacher.set_attn_implementation("eager")
        student.set_attn_implementation("eager")
    if qat is not None:
        wrapped_modules = attach_fake_quant(student, qat)
        batches = calibration_batches(tokenizer, texts, max_length)
        calibrate_ranges(student, batches)
        log.info("distill: quantization-aware, %d modules under simulated INT8, ranges "
                 "calibrated on %d sentences", wrapped_modules,
                 sum(len(b["input_ids"]) for b in batches))
    return rank


def calibration_batches(tokenizer: PreTrainedTokenizerBase, texts: list[str], max_length: int,
                        size: int = 512, batch_size: int = 32) -> list[dict[str, torch.Tensor]]:
    """`size` sentences spread evenly over `texts`, tokenized in padded batches: what
    quantization-aware training calibrates its starting activation ranges on."""
    chosen = texts[:: max(1, len(texts) // size)][:size]
    return [dict(tokenizer(chosen[i : i + batch_size], truncation=True, max_length=max_length,
                           padding=True, return_tensors="pt"))
            for i in range(0, len(chosen), batch_size)]


def _training_texts(splits: LabelledData, teacher: nn.Module,
                    tokenizer: PreTrainedTokenizerBase,
                    augment: AugmentConfig | None) -> tuple[TextSplit, list[int]]:
    """The training split and its labels, with the augmented copies (unlabelled)."""
    train_split = splits.train
    train_labels = splits.labels.encode(train_split)
    if augment is None:
        return train_split, train_labels
    variants = augmented_texts_for(
        train_split.texts, teacher.get_input_embeddings().weight.detach(),
        whole_words(tokenizer.get_vocab()), augment,
    )
    log.info("distill: %d augmented sentences, e.g. %r -> %r", len(variants),
             train_split.texts[0], variants[0])
    augmented = TextSplit(f"{train_split.source} + {augment.copies} augmented copies",
                          train_split.texts + variants,
                          train_split.labels + [""] * len(variants))
    unlabelled = task_of(teacher.config).unlabelled(len(splits.labels.raw))  # UNLABELLED
    return augmented, train_labels + [unlabelled] * len(variants)


def _distill(teacher_ref: str, data: DataConfig, train: TrainConfig, config: DistillConfig,
             output_dir: Path, options: StudentOptions, digest: str, resume: bool,
             cache_dir: Path | None, context: TrainingContext) -> dict[str, Any]:
    started = time.monotonic()
    teacher, tokenizer, splits = _load_teacher_and_data(teacher_ref, data, config, options,
                                                        context.splits)
    student, token_map = _starting_student(teacher_ref, teacher, config, train, options)
    rank = _prepare_student(student, teacher, config, train, options, tokenizer,
                            splits.train.texts, data.max_length)
    # Made here, before anything else draws random numbers: a narrower student's
    # projection is initialised from the seed's stream at this point.
    wrapped = StudentWithProjection(student, adapter_for(teacher).shape(
        teacher.config).hidden_size)
    train_split, train_labels = _training_texts(splits, teacher, tokenizer, options.augment)
    # The teacher runs live when its hidden states are needed; otherwise its logits are
    # computed once and cached.
    task = task_of(teacher.config).for_data(data).for_labels(labels_of(teacher))
    # Per-token logits are not cached (their length varies): such a teacher runs live.
    live_teacher = (config.needs_teacher_states or not config.cache_teacher_logits
                    or task.per_token)
    targets = soft_targets(teacher_ref, teacher, tokenizer, splits, train_split,
                           data.max_length, Path(cache_dir or output_dir), live_teacher,
                           options.extra_teachers)
    dev_set = encode(tokenizer, splits.dev.texts, splits.labels.encode(splits.dev),
                     data.max_length, task=task)
    task = task.for_dev(tokenizer, splits.dev.texts, splits.labels.encode(splits.dev),
                        data.max_length)
    trainer = DistillationTrainer(
        teacher=teacher, distill=config, extra_teacher_weight=targets.ensemble_weight,
        student_token_map=token_map, task=task,
        model=wrapped,
        # `epochs: auto` counts the augmented copies too: they are optimiser steps.
        args=training_arguments(output_dir / CHECKPOINTS_SUBDIR, train, task=task,
                                train_size=len(train_split)),
        train_dataset=encode(tokenizer, train_split.texts, train_labels, data.max_length,
                             targets.columns or None, task=task),
        eval_dataset=dev_set,
        data_collator=PaddingCollator(tokenizer.pad_token_id or 0),
        compute_metrics=metrics_for(task),
    )
    if options.sparsity is not None:
        trainer.add_callback(GradualMagnitudePruning(student, options.sparsity))
    train_or_stop(trainer, resumable_checkpoint(output_dir / CHECKPOINTS_SUBDIR, digest, resume),
                  context.should_stop)
    # `epochs`: the number trained (`epochs: auto` resolved).
    metrics = {**dev_results(trainer, dev_set, task), "epochs": trainer.args.num_train_epochs}
    final = _save_student(trainer, student, tokenizer, output_dir, options.student_ref,
                          options.quantization_aware is not None, token_map is not None)
    return _result(teacher_ref, data, train, config, options, final, teacher, student,
                   splits, train_split, targets, metrics, rank, started)


def _save_student(trainer: DistillationTrainer, student: nn.Module,
                  tokenizer: PreTrainedTokenizerBase, output_dir: Path,
                  student_ref: str | None, quantization_aware: bool,
                  own_vocabulary: bool) -> Path:
    """The trained student as a plain float checkpoint with its tokenizer."""
    if quantization_aware:
        detach_fake_quant(student)  # the trained float weights, under their usual names
    merge_word_embeddings(student)  # a plain checkpoint; its config keeps the rank
    final = output_dir / MODEL_SUBDIR
    trainer.model.student.save_pretrained(str(final))
    if own_vocabulary and student_ref is not None:  # the student's own pruned tokenizer
        copy_tokenizer_files(Path(student_ref), final)
    else:
        tokenizer.save_pretrained(str(final))
    return final


def _result(teacher_ref: str, data: DataConfig, train: TrainConfig, config: DistillConfig,
            options: StudentOptions, final: Path, teacher: nn.Module, student: nn.Module,
            splits: LabelledData, train_split: TextSplit, targets: SoftTargets,
            metrics: dict[str, Any], rank: int | None, started: float) -> dict[str, Any]:
    qat, sparsity = options.quantization_aware, options.sparsity
    return dict(
        model_dir=str(final),
        # The weights it started from: a pruned or earlier student, else the teacher's
        # layers. The registry's lineage follows parents, so a pruned student's chain
        # keeps its pruning step and the student that was pruned.
        parent=options.student_ref or teacher_ref,
        teacher=teacher_ref,
        extra_teachers=list(options.extra_teachers),
        teacher_ensemble_dev_accuracy=targets.ensemble_dev_accuracy,
        labels=list(splits.labels.names),
        student_parameters=count_parameters(student),
        teacher_parameters=count_parameters(teacher),
        **metrics,  # dev_accuracy, dev_macro_f1 (, thresholds: training.trainer.dev_results)
        # Under QAT the dev figures (and the best-checkpoint choice) are of the model with
        # simulated INT8 rounding, the training ranges included: an estimate of the
        # exported INT8 model, which is calibrated again.
        dev_metrics_of="simulated static INT8" if qat else "float",
        minutes=round((time.monotonic() - started) / 60, 1),
        sparsity=sparsity_report(student, sparsity) if sparsity is not None else None,
        quantization_aware=asdict(qat) if qat else None,
        augment=asdict(options.augment) if options.augment else None,
        embedding_rank=rank,
        student_vocab_size=adapter_for(student).shape(student.config).vocab_size,
        train_sentences=len(train_split),
        config={"data": asdict(data), "train": asdict(train), "distill": asdict(config)},
    )
