"""Learning-rate schedulers by name, each with the interval Lightning must step it at."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingWarmRestarts, LambdaLR, ReduceLROnPlateau

from medsent.core.config import SchedulerConfig
from medsent.core.errors import ConfigError


def _linear_warmup_decay(opt: Optimizer, cfg: SchedulerConfig, total_steps: int) -> LambdaLR:
    warmup = max(int(cfg.warmup_ratio * total_steps), 0)

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return LambdaLR(opt, factor)


SchedulerBuilder = Callable[[Optimizer, SchedulerConfig, int, str], dict[str, Any] | None]

SCHEDULERS: dict[str, SchedulerBuilder] = {
    # Restart every t0 epochs, period multiplied by t_mult (study: 5 -> 10 -> 20), stepped per epoch.
    "cosine_restarts": lambda opt, cfg, steps, monitor: {
        "scheduler": CosineAnnealingWarmRestarts(opt, T_0=cfg.t0, T_mult=cfg.t_mult, eta_min=cfg.eta_min),
        "interval": "epoch",
    },
    # Halve the LR when the monitored validation metric stalls (study's BiLSTM recipe).
    "plateau": lambda opt, cfg, steps, monitor: {
        "scheduler": ReduceLROnPlateau(
            opt,
            mode="max" if monitor.endswith("f1") else "min",
            patience=cfg.plateau_patience,
            factor=cfg.plateau_factor,
            min_lr=cfg.eta_min,
        ),
        "interval": "epoch",
        "monitor": monitor,
        "strict": True,
    },
    # Transformer recipe: linear warmup over warmup_ratio of the steps, then linear decay to 0, per step.
    "linear_warmup": lambda opt, cfg, steps, monitor: {
        "scheduler": _linear_warmup_decay(opt, cfg, steps),
        "interval": "step",
    },
    "constant": lambda opt, cfg, steps, monitor: None,
}


def check_scheduler_name(name: str) -> None:
    if name not in SCHEDULERS:
        raise ConfigError(f"unknown scheduler '{name}'; known: {', '.join(sorted(SCHEDULERS))}")


def build_scheduler(
    opt: Optimizer, cfg: SchedulerConfig, total_steps: int, monitor: str
) -> dict[str, Any] | None:
    check_scheduler_name(cfg.name)
    return SCHEDULERS[cfg.name](opt, cfg, total_steps, monitor)


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on weight matrices only; biases and norm weights (1-D) are not decayed."""
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim <= 1 or name.endswith(".bias") else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups
