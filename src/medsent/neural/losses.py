"""Losses by name. Class weights come from the training labels, as in the reference study."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medsent.config import LossConfig
from medsent.errors import ConfigError


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


def _centred_mse(logits: torch.Tensor, teacher_log: torch.Tensor, t: float) -> torch.Tensor:
    def centre(x: torch.Tensor) -> torch.Tensor:
        return x - x.mean(dim=-1, keepdim=True)

    return F.mse_loss(centre(logits), centre(teacher_log))


# Soft-target terms by name (``distill.objective``): (student logits, teacher log-probs, T) -> loss.
DISTILL_OBJECTIVES: dict[str, Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]] = {
    "kl": _kl_at_t,
    "mse": _centred_mse,
}


class DistillLoss(nn.Module):
    """Knowledge distillation (Hinton et al., 2015): ``alpha`` x the class loss on gold labels (rows
    that have one) + (1 - alpha) x T^2 x KL(teacher_T || student_T) on every row with teacher
    probabilities; a batch without gold labels is all KL. The teacher's calibrated probabilities are
    softened by dividing their logs by T. Validation batches carry no teacher probabilities and
    score the class loss alone.

    ``objective="mse"`` replaces the KL by the squared distance between the student's logits and the
    teacher's log-probabilities, both centred per row (Tang et al., 2019, BERT into a BiLSTM): it
    weighs the gaps between non-top classes as much as the top one, where KL mostly follows the
    argmax. T plays no part there."""

    def __init__(
        self,
        class_loss: nn.Module,
        temperature: float,
        alpha: float,
        objective: str = "kl",
        hint: tuple[int, int, float] | None = None,
    ) -> None:
        """``hint``: (student feature width, teacher vector width, weight) adds the hint term: a
        linear map of the student's pooled review vector, trained with it and dropped afterwards,
        is pulled towards the teacher's vector by cosine distance."""
        super().__init__()
        if objective not in DISTILL_OBJECTIVES:
            raise ConfigError(
                f"unknown distillation objective '{objective}'; known: {', '.join(DISTILL_OBJECTIVES)}"
            )
        self.class_loss, self.temperature, self.alpha = class_loss, temperature, alpha
        self.soft_term = DISTILL_OBJECTIVES[objective]
        self.hint_weight = hint[2] if hint else 0.0
        self.hint_map = nn.Linear(hint[0], hint[1]) if hint else None

    def _forward(
        self, model: nn.Module, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits and, when the hint term is on and the batch has teacher vectors, its value."""
        if self.hint_map is None or "hint" not in batch:
            return model(batch["input_ids"], batch["attention_mask"]), None
        from medsent.neural.targets import base_of

        base: Any = base_of(model)
        feats = base.features(batch["input_ids"], batch["attention_mask"])
        wrapped = base is not model  # a TaskNet's class logits may come from another head
        logits = model(batch["input_ids"], batch["attention_mask"]) if wrapped else base.classify(feats)
        mapped = self.hint_map(feats.float())
        hint = 1.0 - F.cosine_similarity(mapped, batch["hint"].float(), dim=-1).mean()
        return logits, hint

    def batch_loss(
        self, model: nn.Module, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits, hint = self._forward(model, batch)
        labels = batch["labels"]
        has = labels >= 0
        soft = batch.get("soft")
        gold = self.class_loss(logits[has], labels[has]) if bool(has.any()) else logits.sum() * 0.0
        if soft is None:
            return gold, logits
        teacher_log = torch.log(soft.float().clamp(min=1e-8))
        soft_loss = self.soft_term(logits.float(), teacher_log, self.temperature)
        weight = self.alpha if bool(has.any()) else 0.0
        loss = weight * gold + (1 - weight) * soft_loss
        if hint is not None:
            loss = loss + self.hint_weight * hint
        return loss, logits
