import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medsent.core.config import LossConfig
from medsent.core.errors import ConfigError
from medsent.neural.losses import (
    DistillLoss,
    FocalLoss,
    StudyLabelSmoothingLoss,
    build_loss,
    class_weights_from_labels,
)

LOGITS = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-1.0, 3.0, 0.0], [0.0, 0.0, 4.0]])
TARGET = torch.tensor([0, 2, 1, 1])


def test_class_weights_reproduce_the_study_alpha() -> None:
    labels = np.repeat([0, 1, 2], [404, 132, 464])  # the study's 40.4 / 13.2 / 46.4 split
    assert class_weights_from_labels(labels) == pytest.approx([0.83, 2.52, 0.72], abs=0.01)


def test_focal_with_gamma_zero_and_no_alpha_is_cross_entropy() -> None:
    assert FocalLoss(0.0)(LOGITS, TARGET) == pytest.approx(F.cross_entropy(LOGITS, TARGET).item())


def test_focal_down_weights_easy_examples() -> None:
    per_ce = F.cross_entropy(LOGITS, TARGET, reduction="none")
    p_t = torch.exp(-per_ce)
    expected = ((1 - p_t) ** 2 * per_ce).mean()
    assert FocalLoss(2.0)(LOGITS, TARGET) == pytest.approx(expected.item(), rel=1e-5)
    alpha = torch.tensor([0.83, 2.52, 0.72])
    assert FocalLoss(2.0, alpha)(LOGITS, TARGET) == pytest.approx(
        ((1 - p_t) ** 2 * per_ce * alpha[TARGET]).mean().item(), rel=1e-5
    )


def test_study_label_smoothing_spreads_over_the_other_classes() -> None:
    dist = torch.full((4, 3), 0.05)
    dist[torch.arange(4), TARGET] = 0.9
    expected = (-(dist * F.log_softmax(LOGITS, -1)).sum(-1)).mean()
    assert StudyLabelSmoothingLoss(0.1)(LOGITS, TARGET) == pytest.approx(expected.item(), rel=1e-6)
    torch_form = F.cross_entropy(LOGITS, TARGET, label_smoothing=0.1)
    assert abs(torch_form.item() - expected.item()) > 1e-4  # the two forms really differ


def test_losses_by_name_and_unknown_name_lists_known() -> None:
    labels = np.array([0, 0, 1, 2, 2, 2])
    for name in ("ce", "weighted_ce", "focal", "label_smoothing", "label_smoothing_torch"):
        loss = build_loss(LossConfig(name=name), labels)(LOGITS, TARGET)
        assert torch.isfinite(loss)
    with pytest.raises(ConfigError, match="unknown loss 'hinge'; known: ce, focal, label_smoothing"):
        build_loss(LossConfig(name="hinge"), labels)


class _Fixed(torch.nn.Module):
    """A "network" that returns the given logits, so a loss can be checked on known numbers."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.logits


def _batch(labels: list[int], soft: torch.Tensor) -> dict[str, torch.Tensor]:
    n = len(labels)
    ids = torch.ones((n, 4), dtype=torch.long)
    return {"input_ids": ids, "attention_mask": ids, "labels": torch.tensor(labels), "soft": soft}


def test_the_distillation_loss_matches_its_formula() -> None:
    soft = F.softmax(torch.tensor([[1.0, 0.0, -2.0], [0.0, 3.0, 1.0], [2.0, 2.0, 0.5], [0.0, 0.0, 0.0]]), -1)
    unlabelled = _batch([-1, -1, -1, -1], soft)
    t_log = torch.log(soft)
    # KL at T: T^2 x KL(teacher_T || student_T), batch mean; all of it when no row has a gold label.
    loss_fn = DistillLoss(torch.nn.CrossEntropyLoss(), 2.0, 0.5)
    kl, _ = loss_fn.batch_loss(_Fixed(LOGITS), unlabelled)
    teacher_t = F.softmax(t_log / 2, -1)
    expected = (teacher_t * (torch.log(teacher_t) - F.log_softmax(LOGITS / 2, -1))).sum(-1).mean() * 4
    assert kl.item() == pytest.approx(expected.item(), rel=1e-5)
    # Gold labels where they exist: alpha x class loss + (1 - alpha) x the soft term.
    both, _ = loss_fn.batch_loss(_Fixed(LOGITS), _batch([0, -1, 1, -1], soft))
    gold = F.cross_entropy(LOGITS[[0, 2]], torch.tensor([0, 1]))
    assert both.item() == pytest.approx((0.5 * gold + 0.5 * expected).item(), rel=1e-5)
    # Validation batches carry no teacher probabilities: the class loss alone.
    plain = {k: v for k, v in _batch([0, 2, 1, 1], soft).items() if k != "soft"}
    assert loss_fn.batch_loss(_Fixed(LOGITS), plain)[0].item() == pytest.approx(
        F.cross_entropy(LOGITS, TARGET.new_tensor([0, 2, 1, 1])).item(), rel=1e-6
    )
