"""Lightning callbacks of the one training engine: the per-epoch history (and its plots), timed
mid-epoch checkpoints, gradual unfreezing, and a progress bar that shows the time left for the run."""

from __future__ import annotations

import csv
import logging
import os
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from lightning.pytorch.callbacks import Callback

log = logging.getLogger(__name__)

HISTORY_FIELDS = [
    "epoch",
    "train_loss",
    "val_loss",
    "train_acc",
    "val_acc",
    "train_macro_f1",
    "val_macro_f1",
    "val_kappa",
    "val_f1_negative",
    "val_f1_neutral",
    "val_f1_positive",
    "gap_acc",
    "lr",
    "train_loss_var",
    "grad_norm_mean",
    "grad_norm_max",
    "grad_steps_clipped",
    "val_n",
    "epoch_seconds",
    "train_samples_per_s",
]


class EpochHistory(Callback):
    """One CSV row per epoch with every figure the study reports, plus train throughput."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._t0 = 0.0
        self._train_s = 0.0
        self._samples = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # A run resumed inside an epoch gets no epoch start: time from here.
        self._t0, self._samples = time.perf_counter(), 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0, self._samples = time.perf_counter(), 0

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._samples += len(batch["labels"]) * trainer.world_size

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._train_s = time.perf_counter() - self._t0

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Written before the checkpoint callbacks (Lightning runs them last): a run killed between
        # the two replays this epoch on resume and rewrites its row.
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        m = {k: float(v) for k, v in trainer.callback_metrics.items()}
        row: dict[str, Any] = {k: m.get(k, "") for k in HISTORY_FIELDS}
        row["epoch"] = trainer.current_epoch + 1
        if "train_acc" in m and "val_acc" in m:
            row["gap_acc"] = m["train_acc"] - m["val_acc"]
        row["val_n"] = m.get("val_n", "")
        row["epoch_seconds"] = time.perf_counter() - self._t0
        row["train_samples_per_s"] = self._samples / self._train_s if self._train_s else ""
        # A resumed run replays the epoch it was killed in: keep one row per epoch.
        rows = [r for r in _read_rows(self.path) if int(float(r["epoch"])) < row["epoch"]] + [row]
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=HISTORY_FIELDS)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, self.path)


class TimedCheckpoint(Callback):
    """``last.ckpt`` every ``minutes`` of training, not only at epoch ends: an epoch of a large encoder
    on two CPU cores can take an hour, and a background run can be killed at any moment.

    Written only after an optimizer step (no half-accumulated gradient is lost), through a temporary
    file and a rename. The checkpoint records how many batches of the epoch were done, so the
    resumed run starts at the next batch of the same order, with the same random state: it ends
    where the uninterrupted run would have."""

    def __init__(self, path: Path, minutes: float, accumulate: int) -> None:
        self.path, self.seconds, self.accumulate = path, 60.0 * minutes, accumulate
        self._last = time.monotonic()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last = time.monotonic()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if (batch_idx + 1) % self.accumulate or batch_idx + 1 >= trainer.num_training_batches:
            return  # mid-accumulation, or the epoch-end checkpoint comes right after
        # Every DDP rank must take part in a save: rank 0's clock decides for all.
        if not trainer.strategy.broadcast(time.monotonic() - self._last >= self.seconds, src=0):
            return
        loader: Any = trainer.train_dataloader
        if hasattr(loader, "mark"):
            loader.mark(trainer.current_epoch, batch_idx + 1)
        tmp = self.path.with_name(f".{self.path.stem}.tmp{self.path.suffix}")
        trainer.save_checkpoint(tmp)
        if trainer.is_global_zero:
            os.replace(tmp, self.path)
        self._last = time.monotonic()
        log.info("checkpoint: epoch %d, batch %d", trainer.current_epoch + 1, batch_idx + 1)


def _read_rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def read_history(path: Path) -> list[dict[str, float]]:
    return [
        {k: float(v) if v not in ("", None) else float("nan") for k, v in r.items()} for r in _read_rows(path)
    ]


def plot_history(history: list[dict[str, float]], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not history:
        return []
    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for key, label in (("train_loss", "train"), ("val_loss", "val")):
        axes[0].plot(epochs, [h[key] for h in history], marker="o", label=label)
    axes[0].set_title("loss")
    for key, label in (
        ("train_macro_f1", "train macro-F1"),
        ("val_macro_f1", "val macro-F1"),
        ("val_f1_neutral", "val Neutral F1"),
    ):
        axes[1].plot(epochs, [h[key] for h in history], marker="o", label=label)
    axes[1].set_title("F1")
    for key, label in (("train_acc", "train"), ("val_acc", "val")):
        axes[2].plot(epochs, [h[key] for h in history], marker="o", label=label)
    axes[2].set_title("accuracy (gap = overfitting)")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    curves = out / "curves.png"
    fig.savefig(curves, dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(epochs, [h["lr"] for h in history], marker="o")
    ax.set_title("learning rate per epoch")
    ax.set_xlabel("epoch")
    ax.set_yscale("log")
    fig.tight_layout()
    lr = out / "lr_schedule.png"
    fig.savefig(lr, dpi=100)
    plt.close(fig)
    return [curves, lr]


class GradualUnfreeze(Callback):
    """One more frozen encoder layer (from the top) trains each epoch (ULMFiT-style)."""

    def __init__(self, model: Any, cfg: Any) -> None:
        self.model, self.cfg = model, cfg

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from medsent.neural.hf import unfreeze_next

        left = unfreeze_next(self.model, self.cfg, trainer.current_epoch)
        log.info("epoch %d: %d encoder layers still frozen", trainer.current_epoch + 1, left)


def _clock(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


def run_progress_bar(refresh_rate: int) -> Callback:
    """Lightning's epoch bar, plus the time left for the whole run (``run_left``): the optimizer
    steps left up to max_epochs times the mean time per step so far, validation included. Early
    stopping can only make the run shorter."""
    from lightning.pytorch.callbacks import TQDMProgressBar

    class RunProgressBar(TQDMProgressBar):
        _start = 0.0
        _first_step = 0

        def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            super().on_train_start(trainer, pl_module)
            self._start, self._first_step = time.monotonic(), trainer.global_step

        def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
            items: dict[str, Any] = dict(super().get_metrics(trainer, pl_module))
            done = trainer.global_step - self._first_step
            total = trainer.estimated_stepping_batches
            if done > 0 and np.isfinite(total):
                per_step = (time.monotonic() - self._start) / done
                items["run_left"] = _clock(max(total - trainer.global_step, 0) * per_step)
            return items

    return RunProgressBar(refresh_rate=refresh_rate)
