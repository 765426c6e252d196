"""More than one target per review: ordinal rating levels and auxiliary heads with partial labels.

Every review in the pool carries a 1-5 satisfaction (collapsed to 3 classes for the task), an
effectiveness and an ease-of-use rating; 26K more WebMD reviews carry effectiveness alone. A
``TaskNet`` puts extra heads on a model's pooled review vector (``features``): the network the run
serves still maps (input_ids, attention_mask) to 3-class logits, so prediction, ONNX and the
contract are unchanged; training adds the other heads' losses where a row has their label.

- ``targets.main: ordinal``: the main head predicts the rating levels; the 3 class probabilities
  are the sums over their levels, returned as log-probabilities (valid logits for softmax).
- ``targets.aux``: heads for ``rating`` (levels), ``effectiveness``, ``ease_of_use``, each with its
  loss weight; a missing value (-1) adds nothing to that head's loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from medsent.core.config import RunConfig
from medsent.core.errors import ConfigError
from medsent.core.labels import LABELS

MISSING = -1


@dataclass(frozen=True)
class TargetSpec:
    """One extra target: its name, the frame column it is read from, its scale and loss weight."""

    name: str
    column: str
    low: int
    levels: int
    weight: float


def target_specs(cfg: RunConfig) -> list[TargetSpec]:
    """The main ordinal target (first, when on) and every auxiliary head with a positive weight."""
    rating = cfg.data.rating
    low, high = int(rating.scale_min), int(rating.scale_max)
    specs: list[TargetSpec] = []
    if cfg.targets.main == "ordinal":
        specs.append(TargetSpec("rating", "rating", low, high - low + 1, 1.0))
    aux_low, aux_high = cfg.data.aux_scale
    for name, weight in sorted(cfg.targets.aux.items()):
        if weight <= 0:
            continue
        if name == "rating":
            specs.append(TargetSpec("rating", "rating", low, high - low + 1, weight))
        else:
            specs.append(TargetSpec(name, f"aux_{name}", aux_low, aux_high - aux_low + 1, weight))
    return specs


def target_matrix(frame: pd.DataFrame, specs: list[TargetSpec]) -> np.ndarray:
    """rows x targets of level indices, MISSING where a row has no value."""
    out = np.full((len(frame), len(specs)), MISSING, dtype=np.int64)
    for j, spec in enumerate(specs):
        if spec.column not in frame.columns:
            continue
        values = pd.to_numeric(frame[spec.column], errors="coerce").to_numpy(dtype=float)
        level = np.rint(values) - spec.low
        ok = np.isfinite(values) & (level >= 0) & (level < spec.levels)
        out[ok, j] = level[ok].astype(np.int64)
    return out


def check_targets(cfg: RunConfig, train: pd.DataFrame, val: pd.DataFrame | None) -> None:
    """Refuse targets the data cannot feed: no ratings for an ordinal head, an empty aux head."""
    for spec in target_specs(cfg):
        have = spec.column in train.columns and train[spec.column].notna().any()
        if not have:
            column = cfg.data.aux_cols.get(spec.name, spec.name)
            where = (
                "a rating column (--rating-col or a preset)"
                if spec.column == "rating"
                else f"the column '{column}' (data.aux_cols) or --aux-data"
            )
            raise ConfigError(f"target '{spec.name}' has no values in the training data; it needs {where}")
    if cfg.targets.main == "ordinal" and (val is None or "rating" not in val.columns):
        raise ConfigError("targets.main=ordinal needs ratings in the validation data too (its val loss)")


def group_matrix(cfg: RunConfig) -> torch.Tensor:
    """levels x classes, 1 where a rating level belongs to a class (the rating map of data.rating)."""
    rating = cfg.data.rating
    low, high = int(rating.scale_min), int(rating.scale_max)
    g = torch.zeros(high - low + 1, len(LABELS))
    for i, value in enumerate(range(low, high + 1)):
        cls = 0 if value <= rating.negative_max else 2 if value >= rating.positive_min else 1
        g[i, cls] = 1.0
    return g


class OrdinalHead(nn.Module):
    """Level scores from the review vector: a softmax over levels (``soft``) or K-1 cumulative
    logits sharing one weight vector (``coral``); ``log_proba`` gives level log-probabilities."""

    def __init__(self, dim: int, levels: int, kind: str) -> None:
        super().__init__()
        self.kind, self.levels = kind, levels
        if kind == "coral":
            self.weight = nn.Linear(dim, 1, bias=False)
            self.bias = nn.Parameter(torch.linspace(1.0, -1.0, levels - 1))
        else:
            self.linear = nn.Linear(dim, levels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "coral":
            return self.weight(x) + self.bias  # (B, K-1): logit of P(level > k)
        return self.linear(x)

    def log_proba(self, scores: torch.Tensor) -> torch.Tensor:
        if self.kind != "coral":
            return F.log_softmax(scores.float(), dim=-1)
        above = torch.sigmoid(scores.float())  # P(level > k), k = 0..K-2
        ones = torch.ones_like(above[:, :1])
        upper = torch.cat([ones, above], dim=1)
        lower = torch.cat([above, torch.zeros_like(ones)], dim=1)
        return torch.log((upper - lower).clamp(min=1e-6))


class TaskNet(nn.Module):
    """A model plus extra heads on its ``features``. ``forward`` gives the 3-class logits the run
    serves; ``forward_tasks`` gives them and every extra head's scores for training."""

    def __init__(
        self, base: Any, specs: list[TargetSpec], main: str, kind: str, groups: torch.Tensor
    ) -> None:
        super().__init__()
        self.base: Any = base  # a registered model: features / classify / head_dropout / feature_dim
        self.main = main
        dim = int(base.feature_dim)
        self.heads = nn.ModuleDict({s.name: OrdinalHead(dim, s.levels, kind) for s in specs})
        self.groups: torch.Tensor
        self.register_buffer("groups", groups, persistent=False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        feats = self.base.features(input_ids, attention_mask)
        if self.main == "class":
            return self.base.classify(feats)
        return self.grouped(self.heads["rating"](self.base.head_dropout(feats)))

    def grouped(self, level_scores: torch.Tensor) -> torch.Tensor:
        """Class log-probabilities: log of the summed probabilities of each class's levels."""
        head: Any = self.heads["rating"]
        level_logp = head.log_proba(level_scores)
        log_groups = torch.log(self.groups.clamp(min=1e-30))
        return torch.logsumexp(level_logp[:, :, None] + log_groups[None], dim=1)

    def forward_tasks(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.base.features(input_ids, attention_mask)
        out = {name: head(self.base.head_dropout(feats)) for name, head in self.heads.items()}
        out["class"] = self.base.classify(feats) if self.main == "class" else self.grouped(out["rating"])
        return out


def soft_level_targets(levels: torch.Tensor, k: int, spread: float) -> torch.Tensor:
    """One-hot level targets with ``spread`` of the mass moved to the neighbouring levels."""
    eye = F.one_hot(levels, k).float()
    if spread <= 0:
        return eye
    left = torch.roll(eye, -1, dims=1)
    left[:, -1] = 0
    right = torch.roll(eye, 1, dims=1)
    right[:, 0] = 0
    near = left + right
    near = near / near.sum(dim=1, keepdim=True).clamp(min=1)
    return (1 - spread) * eye + spread * near


class TaskLoss(nn.Module):
    """The main loss on labelled rows plus each extra head's weighted loss where it has labels.

    ``class_loss`` is the configured 3-class loss (used when ``main`` is class). Ordinal heads use
    soft-label cross-entropy or CORAL's binary cross-entropies; the main ordinal head is weighted per
    row by its class's weight (Neutral stays heavy), the auxiliary heads are not.
    """

    def __init__(
        self,
        class_loss: nn.Module,
        specs: list[TargetSpec],
        main: str,
        kind: str,
        spread: float,
        class_weights: torch.Tensor | None,
        groups: torch.Tensor,
    ) -> None:
        super().__init__()
        self.class_loss, self.specs, self.main, self.kind, self.spread = class_loss, specs, main, kind, spread
        self.class_weights: torch.Tensor | None
        self.level_class: torch.Tensor
        self.register_buffer("class_weights", class_weights, persistent=False)
        self.register_buffer("level_class", groups.argmax(dim=1), persistent=False)

    def _head_loss(
        self, scores: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None
    ) -> torch.Tensor:
        k = scores.shape[1] + (1 if self.kind == "coral" else 0)
        if self.kind == "coral":
            above = (target[:, None] > torch.arange(k - 1, device=target.device)[None, :]).float()
            per_row = F.binary_cross_entropy_with_logits(scores.float(), above, reduction="none").sum(dim=1)
        else:
            dist = soft_level_targets(target, k, self.spread)
            per_row = -(dist * F.log_softmax(scores.float(), dim=-1)).sum(dim=1)
        if weights is None:
            return per_row.mean()
        return (per_row * weights).sum() / weights.sum().clamp(min=1e-12)

    def batch_loss(self, model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, 3-class logits) of a TaskNet on a batch."""
        outputs = model.forward_tasks(batch["input_ids"], batch["attention_mask"])
        targets = batch.get("targets")
        if targets is None:
            targets = torch.full((len(batch["labels"]), 0), -1, device=batch["labels"].device)
        return self(outputs, batch["labels"], targets), outputs["class"]

    def forward(
        self, outputs: dict[str, torch.Tensor], labels: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        total = outputs["class"].sum() * 0.0  # keeps the graph when a batch has no label at all
        if self.main == "class":
            has = labels >= 0
            if bool(has.any()):
                total = total + self.class_loss(outputs["class"][has], labels[has])
        for j, spec in enumerate(self.specs):
            t = targets[:, j]
            has = t >= 0
            if not bool(has.any()):
                continue
            weights = None
            is_main = self.main == "ordinal" and j == 0
            if is_main and self.class_weights is not None:
                weights = self.class_weights[self.level_class[t[has]]]
            total = total + spec.weight * self._head_loss(outputs[spec.name][has], t[has], weights)
        return total


def wrap_for_targets(base: nn.Module, cfg: RunConfig) -> nn.Module:
    """The network a run trains and serves: the model itself, or a TaskNet when targets are on."""
    if not cfg.targets.active:
        return base
    return TaskNet(base, target_specs(cfg), cfg.targets.main, cfg.targets.ordinal_loss, group_matrix(cfg))


def base_of(model: nn.Module) -> Any:
    """The registered model inside a TaskNet (or the model itself)."""
    return model.base if isinstance(model, TaskNet) else model


def build_task_loss(cfg: RunConfig, class_loss: nn.Module, train_labels: np.ndarray) -> TaskLoss | None:
    if not cfg.targets.active:
        return None
    from medsent.neural.losses import class_weights_from_labels

    weights = None
    if cfg.loss.class_weights == "auto":
        weights = torch.tensor(class_weights_from_labels(train_labels), dtype=torch.float32)
    elif cfg.loss.class_weights is not None:
        weights = torch.tensor(list(cfg.loss.class_weights), dtype=torch.float32)
    t = cfg.targets
    return TaskLoss(
        class_loss, target_specs(cfg), t.main, t.ordinal_loss, t.ordinal_spread, weights, group_matrix(cfg)
    )


TASKS_FILE = "tasks.safetensors"


def save_task_heads(net: TaskNet, folder: Path) -> None:
    """A transformer run's extra heads (its encoder and class head are saved in HF format)."""
    from safetensors.torch import save_file

    save_file(
        {k: v.detach().cpu().contiguous() for k, v in net.heads.state_dict().items()},
        str(folder / TASKS_FILE),
    )


def load_task_heads(net: TaskNet, folder: Path) -> None:
    from safetensors.torch import load_file

    from medsent.core.errors import RunError

    try:
        state = load_file(str(folder / TASKS_FILE))
        net.heads.load_state_dict(state)
    except Exception as exc:  # missing file, safetensors header errors, shape mismatches
        raise RunError(f"cannot load the extra target heads {folder / TASKS_FILE}: {exc}") from None
