import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medsent.config import LossConfig
from medsent.errors import ConfigError
from medsent.neural.losses import (
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
