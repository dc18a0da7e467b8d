"""The distillation loss inside transformers' `Trainer`: a student (with the projection
that lifts its hidden states to the teacher's width) learns from a frozen teacher.

loss = alpha_ce * CE(labels) + alpha_kl * T^2 * KL(student/T || teacher/T)
     + alpha_cos * (1 - cos(last hidden states))
     + alpha_hidden * MSE(mapped hidden states) + alpha_attention * MSE(attention maps)
Each term is a function of `training.losses`, looked up there at every step. The task
names the first two: for multi-label, binary cross-entropy per label and the binary KL
of each label's sigmoid instead of the softmax's.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import Trainer
from transformers.modeling_outputs import SequenceClassifierOutput

from compression.config.steps import DistillConfig
from compression.models.architectures import adapter_for
from compression.models.outputs import output_logits
from compression.tasks.classification import SequenceClassification
from compression.tasks.registry import CLASSIFICATION
from compression.training import losses
from compression.training.trainer import ENCODER_KEYS, InOrderEvaluation


class StudentWithProjection(nn.Module):
    """A student plus the linear map that lifts its hidden states to the teacher's width
    (TinyBERT's W_h); only needed, and only trained, when the student is narrower."""

    def __init__(self, student: nn.Module, teacher_hidden: int) -> None:
        super().__init__()
        self.student = student
        self.config = student.config
        student_hidden = adapter_for(student).shape(student.config).hidden_size
        self.projection = (
            nn.Linear(student_hidden, teacher_hidden)
            if student_hidden != teacher_hidden
            else nn.Identity()
        )

    def forward(self, **inputs: Any) -> Any:
        return self.student(**inputs)


def layer_map(student_layers: int, teacher_layers: int) -> list[int]:
    """Teacher hidden-state index for each student hidden-state index 0..M (TinyBERT's
    uniform map g(m) = m * N / M; index 0 is the embeddings, M maps to the last layer)."""
    return [m * teacher_layers // student_layers for m in range(student_layers + 1)]


class DistillationTrainer(InOrderEvaluation, Trainer):
    """`Trainer` whose `compute_loss` is the weighted distillation loss."""

    def __init__(
        self, teacher: nn.Module, distill: DistillConfig,
        extra_teacher_weight: float = 0.0, student_token_map: torch.Tensor | None = None,
        task: SequenceClassification = CLASSIFICATION, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.task = task
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
        student_config = kwargs["model"].config
        self.map = layer_map(adapter_for(student_config).shape(student_config).num_layers,
                             adapter_for(teacher).shape(teacher.config).num_layers)

    def compute_loss(
        self,
        model: StudentWithProjection,
        inputs: dict[str, torch.Tensor],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        cfg = self.distill
        labels = inputs.pop("labels")  # (B,), multi-label (B, C), per token (B, L)
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
        student_logits = output_logits(student)  # a QA head's start/end: (B, L, 2)
        if cached is None or want_states:
            teacher, teacher_logits = self._teacher(encoder_inputs, others, want_states,
                                                    want_attention)
        else:
            teacher, teacher_logits = None, cached.to(student_logits.dtype)

        hard_loss = getattr(losses, self.task.hard_loss)
        soft_loss = getattr(losses, self.task.soft_loss)
        loss = cfg.alpha_ce * hard_loss(student_logits, labels)
        # A per-token task's soft targets count only the positions with a tag; a span
        # task's only the real (unpadded) tokens.
        masks = {"labels": labels} if self.task.soft_loss_reads_labels else {}
        if self.task.soft_loss_reads_mask:
            masks["attention_mask"] = encoder_inputs["attention_mask"]
        loss = loss + cfg.alpha_kl * soft_loss(student_logits, teacher_logits,
                                               cfg.temperature, **masks)
        if want_states:
            loss = self._add_intermediate_losses(loss, model, student, teacher,
                                                 encoder_inputs["attention_mask"])
        # Only logits go back to evaluation: hidden states would be gathered for nothing.
        return (loss, SequenceClassifierOutput(logits=student_logits)) if return_outputs else loss

    def _teacher(self, encoder_inputs: dict[str, torch.Tensor], others: torch.Tensor | None,
                 want_states: bool, want_attention: bool) -> tuple[Any, torch.Tensor]:
        """The teacher run live, and its soft-target logits (mixed with the ensemble's)."""
        with torch.no_grad():
            teacher = self.teacher(**encoder_inputs, output_hidden_states=want_states,
                                   output_attentions=want_attention)
        teacher_logits = output_logits(teacher)  # (B, C), (B, L, C) or (B, L, 2)
        if others is not None:
            weight = self.extra_teacher_weight
            teacher_logits = (1 - weight) * teacher_logits + weight * others.to(
                teacher_logits.dtype)
        return teacher, teacher_logits

    def _add_intermediate_losses(self, loss: torch.Tensor, model: StudentWithProjection,
                                 student: Any, teacher: Any, mask: torch.Tensor) -> torch.Tensor:
        """`loss` plus DistilBERT's cosine and TinyBERT's hidden-state and attention terms."""
        cfg = self.distill
        s_hidden = [model.projection(h) for h in student.hidden_states]  # (B, L, H_t) each
        t_hidden = [teacher.hidden_states[i] for i in self.map]
        if cfg.alpha_cos > 0:  # DistilBERT: align the last hidden states' directions
            loss = loss + cfg.alpha_cos * losses.hidden_cosine(s_hidden[-1:], t_hidden[-1:],
                                                               mask)
        if cfg.alpha_hidden > 0:
            loss = loss + cfg.alpha_hidden * losses.hidden_mse(s_hidden, t_hidden, mask)
        if cfg.alpha_attention > 0:
            t_attention = [teacher.attentions[i - 1] for i in self.map[1:]]
            loss = loss + cfg.alpha_attention * losses.attention_mse(
                student.attentions, t_attention, mask)
        return loss
