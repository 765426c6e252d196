from typing import get_args

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medsent.config import DistillConfig, LossConfig
from medsent.errors import ConfigError
from medsent.neural.losses import (
    DISTILL_OBJECTIVES,
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


def test_distill_objectives_match_their_formulas() -> None:
    soft = F.softmax(torch.tensor([[1.0, 0.0, -2.0], [0.0, 3.0, 1.0], [2.0, 2.0, 0.5], [0.0, 0.0, 0.0]]), -1)
    unlabelled = _batch([-1, -1, -1, -1], soft)
    t_log = torch.log(soft)
    # KL at T: T^2 x KL(teacher_T || student_T), batch mean; all of it when no row has a gold label.
    kl, _ = DistillLoss(torch.nn.CrossEntropyLoss(), 2.0, 0.5).batch_loss(_Fixed(LOGITS), unlabelled)
    teacher_t = F.softmax(t_log / 2, -1)
    expected = (teacher_t * (torch.log(teacher_t) - F.log_softmax(LOGITS / 2, -1))).sum(-1).mean() * 4
    assert kl.item() == pytest.approx(expected.item(), rel=1e-5)
    # MSE: centred logits against centred teacher log-probabilities; a shift per row costs nothing.
    mse = DistillLoss(torch.nn.CrossEntropyLoss(), 2.0, 0.5, "mse")
    loss, _ = mse.batch_loss(_Fixed(LOGITS), unlabelled)
    centred = LOGITS - LOGITS.mean(-1, keepdim=True) - (t_log - t_log.mean(-1, keepdim=True))
    assert loss.item() == pytest.approx((centred**2).mean().item(), rel=1e-5)
    assert mse.batch_loss(_Fixed(t_log + 7.0), unlabelled)[0].item() == pytest.approx(0.0, abs=1e-6)
    # Gold labels where they exist: alpha x class loss + (1 - alpha) x the soft term.
    labelled = _batch([0, -1, 1, -1], soft)
    both, _ = mse.batch_loss(_Fixed(LOGITS), labelled)
    gold = F.cross_entropy(LOGITS[[0, 2]], torch.tensor([0, 1]))
    assert both.item() == pytest.approx((0.5 * gold + 0.5 * (centred**2).mean()).item(), rel=1e-5)


def test_unknown_distill_objective_lists_known() -> None:
    # The config's choices and the loss's registry are one list: a new objective must be added to both.
    assert get_args(DistillConfig.model_fields["objective"].annotation) == tuple(DISTILL_OBJECTIVES)
    with pytest.raises(ConfigError, match="unknown distillation objective 'l1'; known: kl, mse"):
        DistillLoss(torch.nn.CrossEntropyLoss(), 2.0, 0.5, "l1")


def test_the_hint_term_is_the_cosine_distance_of_the_mapped_review_vector() -> None:
    from medsent.config import TextCNNConfig
    from medsent.models.textcnn import TextCNN

    torch.manual_seed(0)
    model = TextCNN(50, TextCNNConfig(embed_dim=8, num_filters=4, kernel_sizes=(2, 3), batch_norm=False))
    model.eval()
    soft = F.softmax(torch.randn(3, 3), -1)
    batch = {
        "input_ids": torch.randint(1, 50, (3, 6)),
        "attention_mask": torch.ones((3, 6), dtype=torch.bool),
        "labels": torch.tensor([-1, -1, -1]),
        "soft": soft,
        "hint": torch.randn(3, 5),
    }
    plain = DistillLoss(torch.nn.CrossEntropyLoss(), 2.0, 0.5)
    hinted = DistillLoss(torch.nn.CrossEntropyLoss(), 2.0, 0.5, hint=(model.feature_dim, 5, 0.7))
    assert hinted.hint_map is not None
    base, logits = plain.batch_loss(model, batch)
    loss, same_logits = hinted.batch_loss(model, batch)
    assert torch.allclose(logits, same_logits)
    feats = model.features(batch["input_ids"], batch["attention_mask"])
    cos = F.cosine_similarity(hinted.hint_map(feats), batch["hint"], dim=-1).mean()
    assert loss.item() == pytest.approx((base + 0.7 * (1 - cos)).item(), rel=1e-5)
    loss.backward()  # the map and the student's own layers both learn from it
    assert hinted.hint_map.weight.grad is not None and hinted.hint_map.weight.grad.abs().sum() > 0
    assert model.convs[0].weight.grad is not None and model.convs[0].weight.grad.abs().sum() > 0
    # Validation batches carry no teacher vectors: no hint term there.
    without = {k: v for k, v in batch.items() if k != "hint"}
    assert hinted.batch_loss(model, without)[0].item() == pytest.approx(base.item(), rel=1e-6)
