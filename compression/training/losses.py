"""Distillation losses: small pure functions in one registry, so a new loss is one
function and one entry. Shapes: B batch, L sequence, H hidden, A heads, C classes."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from compression.tasks.classification import UNLABELLED


def hard_label_ce(student_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy averaged over the rows that have a label; UNLABELLED rows (augmented
    sentences) are skipped, and a batch of only those contributes zero, not NaN. Averaging
    over the labelled rows, not the batch, keeps the hard-label term as strong per batch
    as without augmentation."""
    # student_logits (B, C), labels (B,)
    labelled = labels != UNLABELLED
    if not bool(labelled.any()):
        return student_logits.sum() * 0.0
    return F.cross_entropy(student_logits[labelled], labels[labelled])


def soft_target_kl(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    """T^2 * KL(teacher/T || student/T), Hinton et al.: T^2 keeps gradients comparable."""
    # (B, C) each
    log_p_student = F.log_softmax(student_logits / temperature, dim=-1)
    p_teacher = F.softmax(teacher_logits / temperature, dim=-1)
    return F.kl_div(log_p_student, p_teacher, reduction="batchmean") * temperature**2


def multi_label_bce(student_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of each label's sigmoid, averaged over the labels of the rows
    that have labels; UNLABELLED rows (all entries UNLABELLED) are skipped, as in
    `hard_label_ce`."""
    # student_logits (B, C), labels (B, C) multi-hot
    labelled = labels[:, 0] != UNLABELLED  # (B,)
    if not bool(labelled.any()):
        return student_logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(
        student_logits[labelled], labels[labelled].to(student_logits.dtype))


def binary_soft_target_kl(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    """T^2 * the binary KL(teacher || student) of each label's sigmoid at temperature T,
    averaged over labels and rows: the multi-label soft target (a sigmoid per label, not
    a softmax over labels)."""
    # (B, C) each
    p_teacher = torch.sigmoid(teacher_logits / temperature)
    # BCE against soft targets is KL plus the teacher's entropy, which has no gradient:
    # subtracting it makes the loss 0 when the student matches.
    cross = F.binary_cross_entropy_with_logits(student_logits / temperature, p_teacher,
                                               reduction="none")
    entropy = F.binary_cross_entropy_with_logits(teacher_logits / temperature, p_teacher,
                                                 reduction="none")
    return (cross - entropy).mean() * temperature**2


def token_ce(student_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Token classification: cross-entropy over the positions with a tag (first
    sub-tokens); IGNORED (-100) positions are skipped; none at all gives zero."""
    # student_logits (B, L, C), labels (B, L)
    scored = labels != UNLABELLED  # (B, L)
    if not bool(scored.any()):
        return student_logits.sum() * 0.0
    return F.cross_entropy(student_logits[scored], labels[scored])


def token_soft_target_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                         temperature: float, labels: torch.Tensor) -> torch.Tensor:
    """T^2 * KL(teacher/T || student/T) over the tag distribution at each scored position
    (labels not IGNORED), averaged over those positions."""
    # student_logits, teacher_logits (B, L, C); labels (B, L)
    scored = labels != UNLABELLED
    if not bool(scored.any()):
        return student_logits.sum() * 0.0
    return soft_target_kl(student_logits[scored], teacher_logits[scored], temperature)


def span_ce(student_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Question answering: the mean of the start and the end position's cross-entropy
    over each window's tokens (a window without the answer points at token 0)."""
    # student_logits (B, L, 2): start, end; labels (B, 2): start and end positions
    positions = labels.clamp(0, student_logits.shape[1] - 1)
    start = F.cross_entropy(student_logits[..., 0], positions[:, 0])
    end = F.cross_entropy(student_logits[..., 1], positions[:, 1])
    return (start + end) / 2


def span_soft_target_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                        temperature: float, attention_mask: torch.Tensor) -> torch.Tensor:
    """T^2 * KL(teacher/T || student/T) of the start and of the end distribution over a
    window's real tokens (padding masked out), averaged over the two and the windows."""
    # student_logits, teacher_logits (B, L, 2); attention_mask (B, L)
    padding = (attention_mask == 0).unsqueeze(-1)  # (B, L, 1)
    # A large finite negative, not -inf: softmax gives padding 0 without NaN gradients.
    low = -1e4
    student = student_logits.masked_fill(padding, low)
    teacher = teacher_logits.masked_fill(padding, low)
    terms = [soft_target_kl(student[..., i], teacher[..., i], temperature) for i in (0, 1)]
    return (terms[0] + terms[1]) / 2


def _token_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    return attention_mask.unsqueeze(-1).to(torch.float32)  # (B, L, 1)


def hidden_cosine(
    student_hidden: Sequence[torch.Tensor],
    teacher_hidden: Sequence[torch.Tensor],
    attention_mask: torch.Tensor,
) -> torch.Tensor:
    """Mean over mapped layers and real tokens of 1 - cos(student, teacher) (DistilBERT)."""
    mask = attention_mask.to(torch.bool)  # (B, L)
    losses = []
    for s, t in zip(student_hidden, teacher_hidden, strict=True):  # each (B, L, H)
        cosine = F.cosine_similarity(s[mask], t[mask], dim=-1)  # (tokens,)
        losses.append((1 - cosine).mean())
    return torch.stack(losses).mean()


def hidden_mse(
    student_hidden: Sequence[torch.Tensor],
    teacher_hidden: Sequence[torch.Tensor],
    attention_mask: torch.Tensor,
) -> torch.Tensor:
    """TinyBERT's hidden-state loss: MSE over real tokens of mapped layers."""
    mask = _token_mask(attention_mask)  # (B, L, 1)
    losses = []
    for s, t in zip(student_hidden, teacher_hidden, strict=True):  # each (B, L, H)
        squared = ((s - t) ** 2) * mask
        losses.append(squared.sum() / (mask.sum() * s.shape[-1]))
    return torch.stack(losses).mean()


def attention_mse(
    student_attention: Sequence[torch.Tensor],
    teacher_attention: Sequence[torch.Tensor],
    attention_mask: torch.Tensor,
) -> torch.Tensor:
    """TinyBERT's attention loss: MSE of attention probabilities, real query/key pairs.

    Heads must match in number; with different counts the maps are averaged over heads.
    """
    pair_mask = (attention_mask[:, None, :, None] * attention_mask[:, None, None, :]).float()
    losses = []
    for s, t in zip(student_attention, teacher_attention, strict=True):  # each (B, A, L, L)
        if s.shape[1] != t.shape[1]:
            s, t = s.mean(dim=1, keepdim=True), t.mean(dim=1, keepdim=True)
        squared = ((s - t) ** 2) * pair_mask
        losses.append(squared.sum() / (pair_mask.sum() * s.shape[1]))
    return torch.stack(losses).mean()


LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "ce": hard_label_ce,
    "kl": soft_target_kl,
    "bce": multi_label_bce,
    "binary_kl": binary_soft_target_kl,
    "token_ce": token_ce,
    "token_kl": token_soft_target_kl,
    "span_ce": span_ce,
    "span_kl": span_soft_target_kl,
    "cos": hidden_cosine,
    "hidden": hidden_mse,
    "attention": attention_mse,
}
