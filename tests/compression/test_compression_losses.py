"""The distillation loss functions: zero when student equals teacher, masks padding."""

from __future__ import annotations

import pytest
import torch

from compression.training import losses

torch.manual_seed(0)


def _mask() -> torch.Tensor:
    # Two sequences of length 5: the first has 3 real tokens, the second 5.
    return torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])


def test_registry_names_every_loss() -> None:
    assert set(losses.LOSSES) == {"ce", "kl", "bce", "binary_kl", "token_ce", "token_kl",
                                  "span_ce", "span_kl", "cos", "hidden", "attention"}
    assert losses.LOSSES["kl"] is losses.soft_target_kl
    assert losses.LOSSES["binary_kl"] is losses.binary_soft_target_kl


@pytest.mark.parametrize("temperature", [1.0, 2.0, 5.0])
def test_kl_is_zero_for_identical_logits(temperature: float) -> None:
    logits = torch.randn(4, 3)
    value = losses.soft_target_kl(logits, logits.clone(), temperature)
    assert value.abs().item() < 1e-6


def test_kl_is_positive_for_different_logits_and_scales_with_t_squared() -> None:
    student, teacher = torch.randn(4, 3), torch.randn(4, 3)
    assert losses.soft_target_kl(student, teacher, 2.0).item() > 0
    # T^2 * KL: with logits scaled by T, the KL term itself is the same as at T=1.
    base = losses.soft_target_kl(student, teacher, 1.0)
    scaled = losses.soft_target_kl(3 * student, 3 * teacher, 3.0)
    torch.testing.assert_close(scaled, 9 * base)


def test_kl_gradient_pulls_student_towards_teacher() -> None:
    teacher = torch.tensor([[3.0, -1.0]])
    student = torch.zeros(1, 2, requires_grad=True)
    losses.soft_target_kl(student, teacher, 2.0).backward()
    assert student.grad is not None
    assert student.grad[0, 0] < 0 < student.grad[0, 1]  # descent raises class 0


def test_hard_label_ce() -> None:
    confident = torch.tensor([[10.0, -10.0], [-10.0, 10.0]])
    labels = torch.tensor([0, 1])
    assert losses.hard_label_ce(confident, labels).item() < 1e-6
    assert losses.hard_label_ce(confident, 1 - labels).item() > 10


def test_cosine_is_zero_for_identical_hidden_states() -> None:
    hidden = [torch.randn(2, 5, 8) for _ in range(2)]
    value = losses.hidden_cosine(hidden, [h.clone() for h in hidden], _mask())
    assert value.abs().item() < 1e-6
    other = [torch.randn(2, 5, 8) for _ in range(2)]
    assert losses.hidden_cosine(hidden, other, _mask()).item() > 0.1
    # Cosine ignores length: a scaled copy still scores zero.
    assert losses.hidden_cosine(hidden, [3 * h for h in hidden], _mask()).abs().item() < 1e-6


def _change_padding(tensor: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`tensor` (B, L, H) with large random values at padded positions."""
    changed = tensor.clone()
    changed[mask == 0] = 100 * torch.randn_like(changed[mask == 0])
    return changed


@pytest.mark.parametrize("loss", [losses.hidden_mse, losses.hidden_cosine])
def test_hidden_losses_ignore_padding(loss) -> None:  # type: ignore[no-untyped-def]
    mask = _mask()
    student = [torch.randn(2, 5, 8) for _ in range(3)]
    teacher = [torch.randn(2, 5, 8) for _ in range(3)]
    before = loss(student, teacher, mask)
    after = loss([_change_padding(s, mask) for s in student],
                 [_change_padding(t, mask) for t in teacher], mask)
    torch.testing.assert_close(before, after)
    # ...but a real token does count.
    moved = [s.clone() for s in student]
    moved[0][0, 0] += 10
    assert loss(moved, teacher, mask).item() != pytest.approx(before.item())


def test_hidden_mse_is_zero_for_identical_states_and_exact_otherwise() -> None:
    mask = _mask()
    hidden = [torch.randn(2, 5, 8)]
    assert losses.hidden_mse(hidden, [hidden[0].clone()], mask).item() == 0.0
    # A difference of 1 everywhere: the MSE over real tokens is exactly 1.
    assert losses.hidden_mse(hidden, [hidden[0] + 1], mask).item() == pytest.approx(1.0)


def _attention(batch: int, heads: int, length: int) -> torch.Tensor:
    return torch.softmax(torch.randn(batch, heads, length, length), dim=-1)  # (B, A, L, L)


def test_attention_mse_masks_padded_queries_and_keys() -> None:
    mask = _mask()
    student = [_attention(2, 2, 5), _attention(2, 2, 5)]
    teacher = [_attention(2, 2, 5), _attention(2, 2, 5)]
    before = losses.attention_mse(student, teacher, mask)
    assert before.item() > 0
    assert losses.attention_mse(student, [s.clone() for s in student], mask).item() == 0.0
    changed = [s.clone() for s in student]
    for s in changed:
        s[0, :, 3:, :] = 7.0  # padded query rows of the first sequence
        s[0, :, :, 3:] = -7.0  # padded key columns
    torch.testing.assert_close(losses.attention_mse(changed, teacher, mask), before)
    real = [s.clone() for s in student]
    # Further from the teacher than any two probabilities are (whatever was drawn before).
    real[0][0, 0, 0, 0] = teacher[0][0, 0, 0, 0] + 2.0
    assert losses.attention_mse(real, teacher, mask).item() > before.item()


def test_attention_mse_with_different_head_counts_averages_heads() -> None:
    mask = _mask()
    teacher = [_attention(2, 4, 5)]
    student = [teacher[0].mean(dim=1, keepdim=True).expand(2, 2, 5, 5)]
    assert losses.attention_mse(student, teacher, mask).abs().item() < 1e-7
