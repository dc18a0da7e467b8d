"""Knowledge distillation: teacher classifier -> smaller student, through `Trainer`.

The student is initialised DistilBERT-style (embeddings and a subset of the teacher's
layers copied) or, when narrower, randomly. The loss mixes hard labels, temperature-
scaled soft targets, hidden-state cosine and TinyBERT's intermediate-layer losses.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import (
    BertForSequenceClassification,
    PreTrainedTokenizerBase,
    Trainer,
    set_seed,
)
from transformers.modeling_outputs import SequenceClassifierOutput

from . import losses
from .augment import UNLABELLED, augmented_texts_for
from .configs import AugmentConfig, DataConfig, DistillConfig, TrainConfig, config_digest
from .data import TextSplit, load_data
from .errors import ConfigError
from .low_rank import factorize_word_embeddings, merge_word_embeddings, rank_of
from .modeling import count_parameters, labels_of, load_classifier, load_tokenizer, make_student
from .qat import (
    QatConfig,
    attach_fake_quant,
    calibrate_ranges,
    check_qat_training,
    detach_fake_quant,
)
from .sparsity import GradualMagnitudePruning, SparsityConfig, sparsity_report
from .steps import WEIGHTS_FILE, checksum_or_none, finished_result, write_result
from .training import (
    ENCODER_KEYS,
    PaddingCollator,
    encode,
    resumable_checkpoint,
    trainer_metrics,
    training_arguments,
)
from .vocab import TOKENIZER_FILE, copy_tokenizer_files, token_id_map

log = logging.getLogger(__name__)

MODEL_SUBDIR = "model"


class StudentWithProjection(torch.nn.Module):
    """A student plus the linear map that lifts its hidden states to the teacher's width
    (TinyBERT's W_h); only needed, and only trained, when the student is narrower."""

    def __init__(self, student: BertForSequenceClassification, teacher_hidden: int) -> None:
        super().__init__()
        self.student = student
        self.config = student.config
        student_hidden = student.config.hidden_size
        self.projection = (
            torch.nn.Linear(student_hidden, teacher_hidden)
            if student_hidden != teacher_hidden
            else torch.nn.Identity()
        )

    def forward(self, **inputs: Any) -> Any:
        return self.student(**inputs)


def layer_map(student_layers: int, teacher_layers: int) -> list[int]:
    """Teacher hidden-state index for each student hidden-state index 0..M (TinyBERT's
    uniform map g(m) = m * N / M; index 0 is the embeddings, M maps to the last layer)."""
    return [m * teacher_layers // student_layers for m in range(student_layers + 1)]


class DistillationTrainer(Trainer):
    """`Trainer` whose `compute_loss` is the weighted distillation loss."""

    def __init__(
        self, teacher: BertForSequenceClassification, distill: DistillConfig,
        extra_teacher_weight: float = 0.0, student_token_map: torch.Tensor | None = None,
        **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.teacher = teacher.eval().to(self.args.device)
        for parameter in self.teacher.parameters():
            parameter.requires_grad_(False)
        self.distill = distill
        # Share of the soft targets that comes from the other teachers of an ensemble
        # (their mean logits ride along with each batch as `extra_teacher_logits`).
        self.extra_teacher_weight = extra_teacher_weight
        # A vocabulary-pruned student reads the teacher's token ids through this map.
        self.student_token_map = (student_token_map.to(self.args.device)
                                  if student_token_map is not None else None)
        self.map = layer_map(
            kwargs["model"].config.num_hidden_layers, teacher.config.num_hidden_layers
        )

    def compute_loss(
        self,
        model: StudentWithProjection,
        inputs: dict[str, torch.Tensor],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        cfg = self.distill
        labels = inputs.pop("labels")  # (B,)
        cached = inputs.pop("teacher_logits", None)  # (B, C) or None
        others = inputs.pop("extra_teacher_logits", None)  # (B, C): ensemble mean, or None
        encoder_inputs = {k: v for k, v in inputs.items() if k in ENCODER_KEYS}
        want_states = cfg.needs_teacher_states and model.training
        want_attention = cfg.alpha_attention > 0 and model.training
        student_inputs = encoder_inputs
        if self.student_token_map is not None:
            student_inputs = {**encoder_inputs,
                              "input_ids": self.student_token_map[encoder_inputs["input_ids"]]}
        student = model(
            **student_inputs, output_hidden_states=want_states, output_attentions=want_attention
        )
        if cached is None or want_states:
            with torch.no_grad():
                teacher = self.teacher(
                    **encoder_inputs,
                    output_hidden_states=want_states,
                    output_attentions=want_attention,
                )
            teacher_logits = teacher.logits
            if others is not None:
                weight = self.extra_teacher_weight
                teacher_logits = (1 - weight) * teacher_logits + weight * others.to(
                    teacher_logits.dtype)
        else:
            teacher, teacher_logits = None, cached.to(student.logits.dtype)

        loss = cfg.alpha_ce * losses.hard_label_ce(student.logits, labels)
        loss = loss + cfg.alpha_kl * losses.soft_target_kl(
            student.logits, teacher_logits, cfg.temperature
        )
        if want_states:
            mask = encoder_inputs["attention_mask"]
            s_hidden = [model.projection(h) for h in student.hidden_states]  # (B, L, H_t) each
            t_hidden = [teacher.hidden_states[i] for i in self.map]
            if cfg.alpha_cos > 0:  # DistilBERT: align the last hidden states' directions
                loss = loss + cfg.alpha_cos * losses.hidden_cosine(
                    s_hidden[-1:], t_hidden[-1:], mask
                )
            if cfg.alpha_hidden > 0:
                loss = loss + cfg.alpha_hidden * losses.hidden_mse(s_hidden, t_hidden, mask)
            if want_attention:
                t_attention = [teacher.attentions[i - 1] for i in self.map[1:]]
                loss = loss + cfg.alpha_attention * losses.attention_mse(
                    student.attentions, t_attention, mask
                )
        # Only logits go back to evaluation: hidden states would be gathered for nothing.
        return (loss, SequenceClassifierOutput(logits=student.logits)) if return_outputs else loss


def teacher_logits(
    teacher: BertForSequenceClassification,
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
    teacher: BertForSequenceClassification, tokenizer: PreTrainedTokenizerBase,
    split: TextSplit, max_length: int,
) -> np.ndarray:
    """Teacher logits over a split, computed once and kept beside the run; the key holds
    the teacher's weights checksum, so a retrained teacher gets new logits."""
    key = hashlib.sha256(
        json.dumps([teacher_ref, teacher_weights, split.source, len(split), max_length,
                    hashlib.sha256("\n".join(split.texts).encode()).hexdigest()]).encode()
    ).hexdigest()[:16]
    path = Path(cache_dir) / f"teacher-logits-{key}.npy"
    if path.is_file():
        log.info("distill: teacher logits from cache %s", path)
        return np.load(path)
    logits = teacher_logits(teacher, tokenizer, split.texts, max_length)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, logits)
    return logits


def calibration_batches(tokenizer: PreTrainedTokenizerBase, texts: list[str], max_length: int,
                        size: int = 512, batch_size: int = 32) -> list[dict[str, torch.Tensor]]:
    """`size` sentences spread evenly over `texts`, tokenized in padded batches: what
    quantization-aware training calibrates its starting activation ranges on."""
    chosen = texts[:: max(1, len(texts) // size)][:size]
    return [dict(tokenizer(chosen[i : i + batch_size], truncation=True, max_length=max_length,
                           padding=True, return_tensors="pt"))
            for i in range(0, len(chosen), batch_size)]


def load_extra_teachers(
    refs: Sequence[str], teacher: BertForSequenceClassification,
    tokenizer: PreTrainedTokenizerBase,
) -> list[tuple[str, BertForSequenceClassification]]:
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
    teachers: Sequence[tuple[str, BertForSequenceClassification]],
    tokenizer: PreTrainedTokenizerBase, split: TextSplit, max_length: int, cache_dir: Path,
) -> np.ndarray:
    """Mean logits of `teachers` over `split`, each teacher's cached like the main one's."""
    return np.mean([
        cached_teacher_logits(cache_dir, ref, checksum_or_none(Path(ref) / WEIGHTS_FILE), model,
                              tokenizer, split, max_length)
        for ref, model in teachers
    ], axis=0).astype(np.float32)


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
) -> dict[str, Any]:
    """Distil a student from the classifier at `teacher_ref` into `output_dir/model`.

    With `student_ref` the student starts from that classifier (a pruned student being
    recovered) instead of copying teacher layers; `config`'s shape fields are then unused.
    A student whose vocabulary was pruned with unseen="nearest" reads the teacher's token
    ids through `vocab.token_id_map` and keeps its own tokenizer.
    With `sparsity` the student's encoder weights are magnitude-pruned on a gradual
    schedule while it trains (see `sparsity.py`). With `quantization_aware` it trains under
    simulated static-INT8 rounding and is saved as a plain float model (see `qat.py`).
    With `augment` the training set also holds word-swapped copies of every sentence,
    learnt from the teacher's outputs only (see `augment.py`).
    With `embedding_rank` (or a student that was trained with one) the word embeddings
    train as two factors of that rank (see `low_rank.py`).
    With `extra_teachers` (fine-tuned classifiers sharing the teacher's vocabulary and
    labels) the soft targets are the mean logits of the whole ensemble; hidden-state losses
    still follow `teacher_ref` alone.
    """
    if quantization_aware is not None:  # refused before anything is loaded
        check_qat_training(train, sparsity, embedding_rank)
    output_dir = Path(output_dir)
    teacher_weights = checksum_or_none(Path(teacher_ref) / WEIGHTS_FILE)
    source = {"teacher": teacher_ref, "weights": teacher_weights}
    if student_ref is not None:
        source.update(student=student_ref,
                      student_weights=checksum_or_none(Path(student_ref) / WEIGHTS_FILE))
    if extra_teachers:  # only when set, so that runs from before the option keep their digest
        source["extra_teachers"] = [[ref, checksum_or_none(Path(ref) / WEIGHTS_FILE)]
                                    for ref in extra_teachers]
    # The checksums: a retrained teacher (or student start) means a new student.
    digest = config_digest(source, data, train, config,
                           *([sparsity] if sparsity is not None else []),
                           *([quantization_aware.digest_fields()]
                             if quantization_aware is not None else []),
                           *([augment] if augment is not None else []),
                           # Only when set, so that runs from before the option keep theirs.
                           *([{"embedding_rank": embedding_rank}]
                             if embedding_rank is not None else []))
    done = finished_result(output_dir, digest)
    if done:
        log.info("distill: reusing %s (same config)", output_dir)
        return done

    started = time.monotonic()
    student_token_map = None
    teacher = load_classifier(teacher_ref)
    tokenizer = load_tokenizer(teacher_ref)
    n_teacher = teacher.config.num_hidden_layers
    if student_ref is None and config.num_layers > n_teacher:
        raise ConfigError(
            f"the student has {config.num_layers} layers but the teacher only {n_teacher}"
        )
    splits = load_data(data)
    train_split, dev_split, space = splits.train, splits.dev, splits.labels
    if list(space.names) != labels_of(teacher):
        raise ConfigError(
            f"the data's labels {list(space.names)} are not the teacher's {labels_of(teacher)}; "
            "set label_names to match"
        )

    if student_ref is not None:
        student = load_classifier(student_ref)
        if labels_of(student) != labels_of(teacher):
            raise ConfigError(f"{student_ref}: labels {labels_of(student)} are not the "
                              f"teacher's {labels_of(teacher)}")
        if student.config.vocab_size != teacher.config.vocab_size:
            if quantization_aware is not None:  # its ranges are calibrated on teacher ids
                raise ConfigError(f"{student_ref}: its vocabulary was pruned; train it "
                                  "quantization-aware before pruning the vocabulary")
            # Its vocabulary was pruned: it reads the teacher's token ids through a map,
            # which only a pruning that kept every token string allows.
            student_token_map = token_id_map(Path(teacher_ref) / TOKENIZER_FILE,
                                             Path(student_ref) / TOKENIZER_FILE)
            log.info("distill: the student's vocabulary was pruned (%d of %d rows); it reads "
                     "the teacher's token ids through their strings",
                     student.config.vocab_size, teacher.config.vocab_size)
    else:
        set_seed(train.seed)  # a narrower student's random weights come from the seed
        student = make_student(
            teacher, list(config.layers) if config.layers else None, config.num_layers,
            config.hidden_size, config.num_heads, config.intermediate_size,
        )
    # A factorised student stays factorised.
    rank = embedding_rank if embedding_rank is not None else rank_of(student)
    if quantization_aware is not None:
        check_qat_training(train, sparsity, rank)  # a student_ref can carry a rank
    if rank is not None:
        factorize_word_embeddings(student, rank)
    log.info("distill: teacher %.1fM parameters -> student %.1fM",
             count_parameters(teacher) / 1e6, count_parameters(student) / 1e6)
    if config.alpha_attention > 0:
        # SDPA kernels return no attention maps; the attention loss needs them.
        teacher.set_attn_implementation("eager")
        student.set_attn_implementation("eager")
    if quantization_aware is not None:
        wrapped_modules = attach_fake_quant(student, quantization_aware)
        batches = calibration_batches(tokenizer, train_split.texts, data.max_length)
        calibrate_ranges(student, batches)
        log.info("distill: quantization-aware, %d modules under simulated INT8, ranges "
                 "calibrated on %d sentences", wrapped_modules, sum(len(b["input_ids"])
                                                                   for b in batches))
    wrapped = StudentWithProjection(student, teacher.config.hidden_size)

    train_labels = space.encode(train_split)
    if augment is not None:
        variants = augmented_texts_for(
            train_split.texts, teacher.get_input_embeddings().weight.detach(),
            tokenizer.get_vocab(), augment,
        )
        log.info("distill: %d augmented sentences, e.g. %r -> %r", len(variants),
                 train_split.texts[0], variants[0])
        train_split = TextSplit(f"{train_split.source} + {augment.copies} augmented copies",
                                train_split.texts + variants,
                                train_split.labels + [""] * len(variants))
        train_labels = train_labels + [UNLABELLED] * len(variants)
    cache = Path(cache_dir or output_dir)
    # The teacher runs live when its hidden states are needed; otherwise its logits are
    # computed once and cached.
    live_teacher = config.needs_teacher_states or not config.cache_teacher_logits
    extra: dict[str, list[Any]] = {}
    if not live_teacher:
        extra["teacher_logits"] = list(cached_teacher_logits(
            cache, teacher_ref, teacher_weights, teacher, tokenizer, train_split, data.max_length,
        ))
    ensemble_weight, ensemble_dev_accuracy = 0.0, None
    if extra_teachers:
        others = load_extra_teachers(extra_teachers, teacher, tokenizer)
        # The soft targets become the ensemble's mean logits: the main teacher's share is
        # 1/(1+k), mixed in per batch when it runs live.
        ensemble_weight = len(others) / (1 + len(others))
        extra_train = mean_logits(others, tokenizer, train_split, data.max_length, cache)
        if live_teacher:
            extra["extra_teacher_logits"] = list(extra_train)
        else:
            extra["teacher_logits"] = list(
                (1 - ensemble_weight) * np.asarray(extra["teacher_logits"])
                + ensemble_weight * extra_train)
        dev_mix = ((1 - ensemble_weight)
                   * teacher_logits(teacher, tokenizer, dev_split.texts, data.max_length)
                   + ensemble_weight * mean_logits(others, tokenizer, dev_split,
                                                   data.max_length, cache))
        ensemble_dev_accuracy = float(np.mean(
            dev_mix.argmax(-1) == np.asarray(space.encode(dev_split))))
        log.info("distill: %d-teacher ensemble, dev accuracy %.4f", 1 + len(others),
                 ensemble_dev_accuracy)
        del others  # only their cached logits are needed from here on
    train_set = encode(tokenizer, train_split.texts, train_labels, data.max_length,
                       extra or None)
    dev_set = encode(tokenizer, dev_split.texts, space.encode(dev_split), data.max_length)
    checkpoints = output_dir / "checkpoints"
    trainer = DistillationTrainer(
        teacher=teacher,
        distill=config,
        extra_teacher_weight=ensemble_weight,
        student_token_map=student_token_map,
        model=wrapped,
        args=training_arguments(checkpoints, train),
        train_dataset=train_set,
        eval_dataset=dev_set,
        data_collator=PaddingCollator(tokenizer.pad_token_id or 0),
        compute_metrics=trainer_metrics,
    )
    if sparsity is not None:
        trainer.add_callback(GradualMagnitudePruning(student, sparsity))
    trainer.train(resume_from_checkpoint=resumable_checkpoint(checkpoints, digest, resume))
    metrics = trainer.evaluate()

    if quantization_aware is not None:
        detach_fake_quant(student)  # the trained float weights, under their usual names
    merge_word_embeddings(student)  # a plain BERT checkpoint; its config keeps the rank
    final = output_dir / MODEL_SUBDIR
    trainer.model.student.save_pretrained(str(final))
    if student_token_map is None:
        tokenizer.save_pretrained(str(final))
    else:  # the student's own pruned tokenizer
        copy_tokenizer_files(Path(student_ref), final)
    return write_result(
        output_dir,
        "distill",
        digest,
        model_dir=str(final),
        # The weights it started from: a pruned or earlier student, else the teacher's
        # layers. The registry's lineage follows parents, so a pruned student's chain
        # keeps its pruning step and the student that was pruned.
        parent=student_ref or teacher_ref,
        teacher=teacher_ref,
        extra_teachers=list(extra_teachers),
        teacher_ensemble_dev_accuracy=ensemble_dev_accuracy,
        labels=list(space.names),
        student_parameters=count_parameters(student),
        teacher_parameters=count_parameters(teacher),
        dev_accuracy=metrics.get("eval_accuracy"),
        dev_macro_f1=metrics.get("eval_macro_f1"),
        # Under QAT the dev figures (and the best-checkpoint choice) are of the model with
        # simulated INT8 rounding, the training ranges included: an estimate of the
        # exported INT8 model, which is calibrated again.
        dev_metrics_of="simulated static INT8" if quantization_aware else "float",
        minutes=round((time.monotonic() - started) / 60, 1),
        sparsity=sparsity_report(student, sparsity) if sparsity is not None else None,
        quantization_aware=asdict(quantization_aware) if quantization_aware else None,
        augment=asdict(augment) if augment else None,
        embedding_rank=rank,
        student_vocab_size=student.config.vocab_size,
        train_sentences=len(train_split),
        config={"data": asdict(data), "train": asdict(train), "distill": asdict(config)},
    )
