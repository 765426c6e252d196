"""Losses by name. Class weights come from the training labels, as in the reference study."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medsent.core.config import LossConfig
from medsent.core.errors import ConfigError


def class_weights_from_labels(labels: np.ndarray, num_classes: int = 3) -> list[float]:
    """n / (k * n_c): the study's alpha ([0.83, 2.52, 0.72] for a 40/13/46 split)."""
    labels = np.asarray(labels, dtype=int)
    counts = np.bincount(labels[labels >= 0], minlength=num_classes).astype(float)
    if (counts == 0).any():
        raise ConfigError("cannot compute class weights: a class has no training examples")
    return (counts.sum() / (num_classes * counts)).tolist()


class FocalLoss(nn.Module):
    """Focal loss (Lin et al.): (1 - p_t)^gamma down-weights easy examples; alpha re-weights classes."""

    def __init__(self, gamma: float = 2.0, alpha: torch.Tensor | None = None) -> None:
        super().__init__()
        self.gamma = gamma
        self.alpha: torch.Tensor | None
        self.register_buffer("alpha", alpha, persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logp = F.log_softmax(logits.float(), dim=-1)
        logp_t = logp.gather(1, target.unsqueeze(1)).squeeze(1)
        loss = -((1 - logp_t.exp()) ** self.gamma) * logp_t
        if self.alpha is not None:
            loss = loss * self.alpha[target]
        return loss.mean()


class StudyLabelSmoothingLoss(nn.Module):
    """The study's form: the true class gets 1 - eps, each of the other K-1 classes eps / (K-1).

    (torch's built-in ``label_smoothing`` spreads eps over all K classes instead.)
    """

    def __init__(self, smoothing: float = 0.1, weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.smoothing = smoothing
        self.weight: torch.Tensor | None
        self.register_buffer("weight", weight, persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logp = F.log_softmax(logits.float(), dim=-1)
        k = logits.shape[-1]
        dist = torch.full_like(logp, self.smoothing / (k - 1))
        dist.scatter_(1, target.unsqueeze(1), 1.0 - self.smoothing)
        loss = -(dist * logp).sum(dim=-1)
        if self.weight is not None:
            w = self.weight[target]
            return (loss * w).sum() / w.sum()
        return loss.mean()


class CrossEntropy(nn.Module):
    """torch's cross-entropy; optional class weights and torch-form label smoothing."""

    def __init__(self, weight: torch.Tensor | None = None, smoothing: float = 0.0) -> None:
        super().__init__()
        self.smoothing = smoothing
        self.weight: torch.Tensor | None
        self.register_buffer("weight", weight, persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), target, weight=self.weight, label_smoothing=self.smoothing)


def _weights(cfg: LossConfig, labels: np.ndarray) -> torch.Tensor | None:
    if cfg.class_weights is None:
        return None
    values = class_weights_from_labels(labels) if cfg.class_weights == "auto" else list(cfg.class_weights)
    return torch.tensor(values, dtype=torch.float32)


def _auto(cfg: LossConfig) -> LossConfig:
    return cfg.model_copy(update={"class_weights": "auto"})


LossBuilder = Callable[[LossConfig, np.ndarray], nn.Module]

LOSSES: dict[str, LossBuilder] = {
    "ce": lambda cfg, y: CrossEntropy(),
    # Weighted CE always weights: the given weights, or "auto" when the config says none.
    "weighted_ce": lambda cfg, y: CrossEntropy(_weights(cfg if cfg.class_weights else _auto(cfg), y)),
    "focal": lambda cfg, y: FocalLoss(cfg.gamma, _weights(cfg, y)),
    "label_smoothing": lambda cfg, y: StudyLabelSmoothingLoss(cfg.smoothing, _weights(cfg, y)),
    "label_smoothing_torch": lambda cfg, y: CrossEntropy(_weights(cfg, y), cfg.smoothing),
}


def build_loss(cfg: LossConfig, train_labels: np.ndarray) -> nn.Module:
    if cfg.name not in LOSSES:
        raise ConfigError(f"unknown loss '{cfg.name}'; known: {', '.join(sorted(LOSSES))}")
    return LOSSES[cfg.name](cfg, train_labels)


def _kl_at_t(logits: torch.Tensor, teacher_log: torch.Tensor, t: float) -> torch.Tensor:
    teacher = F.softmax(teacher_log / t, dim=-1)
    return F.kl_div(F.log_softmax(logits / t, dim=-1), teacher, reduction="batchmean") * t * t


class DistillLoss(nn.Module):
    """Knowledge distillation (Hinton et al., 2015): ``alpha`` x the class loss on gold labels (rows
    that have one) + (1 - alpha) x T^2 x KL(teacher_T || student_T) on every row with teacher
    probabilities; a batch without gold labels is all KL. The teacher's calibrated probabilities are
    softened by dividing their logs by T. Validation batches carry no teacher probabilities and
    score the class loss alone."""

    def __init__(self, class_loss: nn.Module, temperature: float, alpha: float) -> None:
        super().__init__()
        self.class_loss, self.temperature, self.alpha = class_loss, temperature, alpha

    def batch_loss(
        self, model: nn.Module, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(batch["input_ids"], batch["attention_mask"])
        labels = batch["labels"]
        has = labels >= 0
        soft = batch.get("soft")
        gold = self.class_loss(logits[has], labels[has]) if bool(has.any()) else logits.sum() * 0.0
        if soft is None:
            return gold, logits
        teacher_log = torch.log(soft.float().clamp(min=1e-8))
        soft_loss = _kl_at_t(logits.float(), teacher_log, self.temperature)
        weight = self.alpha if bool(has.any()) else 0.0
        return weight * gold + (1 - weight) * soft_loss, logits
