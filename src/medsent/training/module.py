"""The one LightningModule: any registered nn.Module + loss + optimiser + scheduler + metrics."""

from __future__ import annotations

import math
from typing import Any, cast

import lightning as L
import torch
from torch import nn
from torchmetrics import Metric
from torchmetrics.aggregation import SumMetric
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassCohenKappa,
    MulticlassF1Score,
)

from medsent.core.config import OptimConfig, SchedulerConfig
from medsent.core.labels import LABELS
from medsent.training.schedulers import build_scheduler, param_groups


class NonFiniteLossError(RuntimeError):
    """Raised when the loss becomes NaN/inf; the last good checkpoint is kept."""


def _metrics(prefix: str) -> nn.ModuleDict:
    k = len(LABELS)
    return nn.ModuleDict(
        {
            "acc": MulticlassAccuracy(num_classes=k, average="micro"),
            "macro_f1": MulticlassF1Score(num_classes=k, average="macro"),
            "class_f1": MulticlassF1Score(num_classes=k, average=None),
            "kappa": MulticlassCohenKappa(num_classes=k),
            "n": SumMetric(),
        }
    )


class SentimentModule(L.LightningModule):
    def __init__(
        self,
        model: nn.Module,
        loss: nn.Module,
        optim: OptimConfig,
        scheduler: SchedulerConfig,
        monitor: str = "val_macro_f1",
        seed: int = 0,
        param_groups_fn: Any = None,
        task_loss: nn.Module | None = None,
        total_steps: int | None = None,
    ) -> None:
        """``task_loss``: a loss over the whole batch that replaces ``loss`` (TaskLoss for a TaskNet's
        extra targets, DistillLoss for a teacher's soft targets): ``task_loss.batch_loss(model,
        batch)`` gives (loss, 3-class logits). ``total_steps``: the optimizer steps of the whole
        run, for per-step schedules; without it Lightning's estimate is asked, which iterates the
        training data before a checkpoint is restored (so a resumed epoch would start at its
        first batch, in epoch 0's order)."""
        super().__init__()
        self.model: nn.Module = model
        self.loss_fn: nn.Module = loss
        self.task_loss = task_loss
        self.optim_cfg = optim
        self.scheduler_cfg = scheduler
        self.monitor = monitor
        self.seed = seed
        self.param_groups_fn = param_groups_fn
        self.train_metrics = _metrics("train")
        self.val_metrics = _metrics("val")
        # Kept as device tensors and read once per epoch: a float() per step would make the GPU wait
        # for the host every step.
        self._batch_losses: list[torch.Tensor] = []
        self._grad_norms: list[torch.Tensor] = []
        self._max_norm = math.inf
        self._epoch_lr = optim.lr
        self._resume_rng: torch.Tensor | None = None
        self.total_steps = total_steps

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids, attention_mask)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # A checkpoint inside an epoch resumes with the dropout draws the uninterrupted run makes.
        checkpoint["medsent_rng"] = torch.get_rng_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._resume_rng = checkpoint.get("medsent_rng")

    def on_train_start(self) -> None:
        # A run resumed inside an epoch gets no epoch start (which reseeds): restore the saved state.
        if self._resume_rng is not None:
            torch.set_rng_state(self._resume_rng)
            self._resume_rng = None
        self._epoch_lr = float(self.trainer.optimizers[0].param_groups[-1]["lr"])

    def on_train_epoch_start(self) -> None:
        # Randomness of an epoch depends only on (seed, epoch): a resumed run replays it exactly.
        torch.manual_seed(self.seed * 7919 + self.current_epoch)
        # Lightning's own set_epoch counter restarts differently after a resume; use the true epoch.
        sampler: Any = getattr(self.trainer.train_dataloader, "batch_sampler", None)
        if sampler is not None and hasattr(sampler, "set_epoch"):
            sampler.set_epoch(self.current_epoch)
        self._batch_losses, self._grad_norms = [], []
        # The LR this epoch trains with (epoch-interval schedulers step before the history is written).
        self._epoch_lr = float(self.trainer.optimizers[0].param_groups[-1]["lr"])

    def _loss_and_logits(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The training objective and the 3-class logits the metrics read."""
        if self.task_loss is None:
            logits = self(batch["input_ids"], batch["attention_mask"])
            return self.loss_fn(logits, batch["labels"]), logits
        batch_loss: Any = self.task_loss
        loss, logits = batch_loss.batch_loss(self.model, batch)
        return loss, logits

    def _update(self, metrics: nn.ModuleDict, logits: torch.Tensor, labels: torch.Tensor) -> None:
        if self.task_loss is not None:  # rows with auxiliary targets only carry no class label
            has = labels >= 0
            logits, labels = logits[has], labels[has]
            if not labels.numel():  # a batch of teacher-labelled text only: nothing to score
                return
        preds = logits.argmax(dim=-1)
        for name, metric in metrics.items():
            if name == "n":
                cast(Metric, metric).update(torch.tensor(float(labels.numel()), device=labels.device))
            else:
                cast(Metric, metric).update(preds, labels)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, logits = self._loss_and_logits(batch)
        self._batch_losses.append(loss.detach())
        # A finiteness check syncs with the device, so it runs every 25 steps (and on step 0).
        if batch_idx % 25 == 0 and not bool(torch.isfinite(torch.stack(self._batch_losses[-25:])).all()):
            raise NonFiniteLossError(
                f"loss became {loss.item()} at epoch {self.current_epoch}, batch {batch_idx}; "
                "lower the learning rate or enable gradient clipping"
            )
        self._update(self.train_metrics, logits.detach(), batch["labels"])
        self.log(
            "loss",
            loss.detach(),
            on_step=True,
            on_epoch=False,
            prog_bar=True,
            batch_size=len(batch["labels"]),
        )
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        loss, logits = self._loss_and_logits(batch)
        self._update(self.val_metrics, logits, batch["labels"])
        self.log(
            "val_loss", loss, on_step=False, on_epoch=True, batch_size=len(batch["labels"]), sync_dist=True
        )

    def _log_metrics(self, prefix: str, metrics: nn.ModuleDict) -> dict[str, float]:
        values: dict[str, float] = {}
        for name, metric in metrics.items():
            result = cast(Metric, metric).compute()
            if name == "class_f1":
                for label, v in zip(LABELS, result.tolist(), strict=True):
                    values[f"{prefix}_f1_{label.lower()}"] = float(v)
            else:
                values[f"{prefix}_{name}"] = float(result)
            cast(Metric, metric).reset()
        self.log_dict(values, sync_dist=False)
        return values

    def _log_train_epoch(self) -> None:
        """Train-side epoch figures; called from the validation epoch end, which Lightning runs after the
        last training batch and before any callback's on_train_epoch_end (early stopping, history)."""
        self._log_metrics("train", self.train_metrics)
        losses = torch.stack(self._batch_losses).float().cpu() if self._batch_losses else torch.zeros(1)
        if not bool(torch.isfinite(losses).all()):
            raise NonFiniteLossError(
                f"loss became non-finite during epoch {self.current_epoch}; "
                "lower the learning rate or enable gradient clipping"
            )
        norms = torch.stack(self._grad_norms).float().cpu() if self._grad_norms else torch.zeros(1)
        self.log_dict(
            {
                "train_loss": float(losses.mean()),
                "train_loss_var": float(losses.var()) if len(losses) > 1 else 0.0,
                "grad_norm_mean": float(norms.mean()),
                "grad_norm_max": float(norms.max()),
                "grad_steps_clipped": float((norms > self._max_norm).sum()),
                "lr": self._epoch_lr,
            }
        )

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            for metric in self.val_metrics.values():
                cast(Metric, metric).reset()
            return
        values = self._log_metrics("val", self.val_metrics)
        if self._batch_losses:
            self._log_train_epoch()
        self._step_epoch_schedulers(values)

    def _step_epoch_schedulers(self, values: dict[str, float]) -> None:
        """Epoch schedulers step here, before the checkpoint callbacks run at validation end.

        Left to Lightning they step after last.ckpt is written, and a resumed run skips that step
        (for ReduceLROnPlateau by design), so it would drift from an uninterrupted one.
        """
        if self.trainer.sanity_checking:
            return
        for config in self.trainer.lr_scheduler_configs:
            if config.interval != "epoch":
                continue
            if isinstance(config.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                key = config.monitor or self.monitor
                metric = values.get(key)
                if metric is None:
                    metric = float(self.trainer.callback_metrics[key])
                config.scheduler.step(metric)
            else:
                config.scheduler.step()

    def lr_scheduler_step(self, scheduler: Any, metric: Any) -> None:
        """Lightning's own stepping, used for per-step schedulers only (epoch ones step above)."""
        for config in self.trainer.lr_scheduler_configs:
            if config.scheduler is scheduler and config.interval == "epoch":
                return
        scheduler.step()

    def configure_gradient_clipping(
        self,
        optimizer: Any,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """Clip by global norm and record the pre-clip norm (the study's stability figures)."""
        params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        if not params:
            return
        self._max_norm = float(gradient_clip_val) if gradient_clip_val else math.inf
        self._grad_norms.append(torch.nn.utils.clip_grad_norm_(params, max_norm=self._max_norm).detach())

    def configure_optimizers(self) -> Any:
        cfg = self.optim_cfg
        groups = (
            self.param_groups_fn(self.model, cfg)
            if self.param_groups_fn is not None
            else param_groups(self.model, cfg.weight_decay)
        )
        kwargs: dict[str, Any] = {"lr": cfg.lr, "betas": cfg.betas, "eps": cfg.eps}
        # Fused AdamW is one kernel per step on CUDA; fp16's loss scaler cannot unscale for it.
        if self.device.type == "cuda" and self.trainer.precision != "16-mixed":
            kwargs["fused"] = True
        if cfg.name == "adamw":
            opt: torch.optim.Optimizer = torch.optim.AdamW(groups, **kwargs)
        else:
            for g in groups:
                g["weight_decay"] = cfg.weight_decay
            opt = torch.optim.Adam(groups, **kwargs)
        sched = build_scheduler(
            opt,
            self.scheduler_cfg,
            self.total_steps or int(self.trainer.estimated_stepping_batches),
            self.monitor,
        )
        if sched is None:
            return opt
        return {"optimizer": opt, "lr_scheduler": sched}
