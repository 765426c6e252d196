"""Training any neural model with Lightning: precision, clipping, accumulation, early stopping on
validation macro-F1, best/last checkpoints, resume, DDP, per-epoch history and plots."""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from safetensors.torch import save_file

from medsent.config import RunConfig
from medsent.errors import ConfigError
from medsent.models.registry import get_model_spec
from medsent.neural.data import BucketBatchSampler, EncodedDataset, ReviewDataModule
from medsent.neural.infer import WEIGHTS, text_view
from medsent.neural.losses import DistillLoss, build_loss
from medsent.neural.module import SentimentModule
from medsent.neural.prefix_cache import cache_active
from medsent.neural.schedulers import check_scheduler_name
from medsent.neural.targets import TaskNet, base_of, build_task_loss, save_task_heads, wrap_for_targets
from medsent.neural.vocab import PAD_ID, WordVocab
from medsent.runs import HISTORY_FILE

log = logging.getLogger(__name__)

RESUME_CKPT = "last.ckpt"
# The teacher's probabilities that medsent.distill adds to the training split.
SOFT_COLUMNS = ("teacher_negative", "teacher_neutral", "teacher_positive")
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


def on_cuda(accelerator: str) -> bool:
    return torch.cuda.is_available() and accelerator in ("auto", "gpu", "cuda")


def static_shapes(pad_to: str, accelerator: str) -> bool:
    if pad_to == "auto":
        return on_cuda(accelerator)
    return pad_to == "bucket"


def shape_buckets(model_buckets: Sequence[int], tc: Any, max_len: int) -> list[int]:
    """The padded lengths batches use: the model's buckets, or trainer.cuda_buckets on a GPU
    (capped by the longest input, which must still fit the last bucket)."""
    if tc.cuda_buckets and on_cuda(tc.accelerator):
        return sorted({min(int(b), max_len) for b in tc.cuda_buckets} | {max_len})
    return list(model_buckets)


def ckpt_dir_for(work_dir: Path) -> Path:
    return work_dir / "checkpoints"


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX). Elsewhere PyTorch emulates it:
    on an AVX2-only EPYC a MiniLM training step took 16.1 s under bf16 autocast against 1.8 s in
    float32, while on an AMX CPU bf16 measured about 1.5x faster than float32."""
    cpu: Any = torch.cpu
    return bool(cpu._is_avx512_bf16_supported() or cpu._is_amx_tile_supported())


def resolve_precision(wanted: str, accelerator: str) -> str:
    """Map our precision names to Lightning's, falling back where the hardware cannot do it.

    ``auto``: bf16 autocast where the hardware runs bf16 natively (a CUDA GPU with bf16, a CPU with
    AVX512-BF16 or AMX), float32 elsewhere. An explicit ``bf16`` is honoured, with a warning on a
    CPU that can only emulate it."""
    cuda = torch.cuda.is_available() and accelerator in ("auto", "gpu", "cuda")
    if wanted == "auto":
        if cuda:
            return "bf16-mixed" if torch.cuda.is_bf16_supported() else "32-true"
        return "bf16-mixed" if cpu_has_bf16() else "32-true"
    if wanted == "32":
        return "32-true"
    if wanted == "bf16":
        if cuda and not torch.cuda.is_bf16_supported():
            warnings.warn("this GPU has no bf16; using fp16 with loss scaling", stacklevel=2)
            return "16-mixed"
        if not cuda and not cpu_has_bf16():
            warnings.warn(
                "this CPU has no native bf16 (AVX512-BF16 or AMX): bf16 autocast is emulated and runs "
                "several times slower than float32; precision auto picks float32 here",
                stacklevel=2,
            )
        return "bf16-mixed"
    if not cuda:
        warnings.warn("fp16 mixed precision needs CUDA; using bf16 autocast on the CPU", stacklevel=2)
        return "bf16-mixed"
    return "16-mixed"


def validate_neural_config(cfg: RunConfig) -> None:
    """Errors that must stop a run before any data is read or a model built."""
    from medsent.neural.losses import LOSSES

    if cfg.loss.name not in LOSSES:
        raise ConfigError(f"unknown loss '{cfg.loss.name}'; known: {', '.join(sorted(LOSSES))}")
    check_scheduler_name(cfg.scheduler.name)
    if get_model_spec(cfg.model).family == "transformer":
        from medsent.neural.hf import validate_transformer

        validate_transformer(cfg.transformer)
    if cfg.scheduler.name == "plateau" and cfg.trainer.monitor not in ("val_macro_f1", "val_loss"):
        raise ConfigError("plateau scheduler needs trainer.monitor val_macro_f1 or val_loss")


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


@dataclass
class NeuralFit:
    """What a finished fit leaves: the best weights in memory and the figures of the run."""

    model: torch.nn.Module
    save_model: Callable[[torch.nn.Module, Path], None]
    summary: dict[str, Any]
    history: list[dict[str, float]]


def is_global_zero() -> bool:
    from lightning.fabric.utilities.rank_zero import _get_rank

    return (_get_rank() or 0) == 0


@dataclass
class Prepared:
    """A model ready to train, the ids of both splits, and how to save what it needs besides weights."""

    model: torch.nn.Module
    train_ids: list[list[int]]
    val_ids: list[list[int]]
    buckets: Sequence[int]
    pad_id: int
    save_model: Callable[[torch.nn.Module, Path], None]
    info: dict[str, Any]
    param_groups_fn: Any = None
    callbacks: list[Callback] = field(default_factory=list)
    train_prefix: Any = None  # PrefixRows: cached frozen-prefix hidden states per review
    val_prefix: Any = None


def _prepare_word_model(
    cfg: RunConfig, train_texts: Sequence[str], val_texts: Sequence[str], work_dir: Path, resume: bool
) -> Prepared:
    spec = get_model_spec(cfg.model)
    assert spec.build is not None  # word models always have a builder
    train_view, val_view = text_view(train_texts, cfg), text_view(val_texts, cfg)
    vocab_dir = work_dir / "vocab"
    if resume and (vocab_dir / "tokenizer.json").exists():
        vocab = WordVocab.load(vocab_dir, cfg.vocab.max_len)
    else:
        vocab = WordVocab.build(train_view, cfg.vocab)
        vocab_dir.mkdir(exist_ok=True)
        vocab.save(vocab_dir)
    coverage = vocab.coverage(train_view)
    log.info("vocabulary: %d tokens, %.1f%% of training tokens covered", vocab.size, 100 * coverage)
    model = wrap_for_targets(spec.build(vocab.size, cfg), cfg)

    def save_weights_and_vocab(m: torch.nn.Module, folder: Path) -> None:
        state = {k: v.detach().cpu().contiguous() for k, v in m.state_dict().items()}
        save_file(state, str(folder / WEIGHTS))
        vocab.save(folder)

    return Prepared(
        model=model,
        train_ids=vocab.encode(train_view),
        val_ids=vocab.encode(val_view),
        buckets=cfg.vocab.buckets,
        pad_id=PAD_ID,
        save_model=save_weights_and_vocab,
        info={"vocab_size": vocab.size, "vocab_coverage": coverage},
    )


class GradualUnfreeze(Callback):
    """One more frozen encoder layer (from the top) trains each epoch (ULMFiT-style)."""

    def __init__(self, model: Any, cfg: Any) -> None:
        self.model, self.cfg = model, cfg

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from medsent.neural.hf import unfreeze_next

        left = unfreeze_next(self.model, self.cfg, trainer.current_epoch)
        log.info("epoch %d: %d encoder layers still frozen", trainer.current_epoch + 1, left)


def _prepare_transformer(
    cfg: RunConfig, train_texts: Sequence[str], val_texts: Sequence[str], work_dir: Path
) -> Prepared:
    from medsent.neural.hf import (
        HFTextEncoder,
        build_transformer,
        check_tokenizer_fits,
        freeze,
        save_transformer,
        transformer_param_groups,
    )

    tcfg = cfg.transformer
    encoder = HFTextEncoder.load(tcfg.pretrained, tcfg)
    base = build_transformer(tcfg)
    check_tokenizer_fits(base, encoder)
    counts = freeze(base, tcfg)
    model = wrap_for_targets(base, cfg)
    if model is not base:
        counts["params_total"] = sum(p.numel() for p in model.parameters())
        counts["params_trainable"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info(
        "parameters: %s total, %s frozen, %s trainable",
        f"{counts['params_total']:,}",
        f"{counts['params_frozen']:,}",
        f"{counts['params_trainable']:,}",
    )

    def save(m: torch.nn.Module, folder: Path) -> None:
        save_transformer(base_of(m), encoder, folder)
        if isinstance(m, TaskNet):
            save_task_heads(m, folder)

    train_ids, val_ids = encoder.encode(train_texts), encoder.encode(val_texts)
    info: dict[str, Any] = {**counts, "pretrained": tcfg.pretrained}
    train_prefix = val_prefix = None
    if cache_active(tcfg, on_cuda(cfg.trainer.accelerator)):
        train_prefix, val_prefix, info["prefix_cache"] = _cached_prefix(
            base, cfg, [*train_ids, *val_ids], len(train_ids), work_dir
        )
    return Prepared(
        model=model,
        train_ids=train_ids,
        val_ids=val_ids,
        buckets=tcfg.buckets,
        pad_id=encoder.pad_id,
        save_model=save,
        info=info,
        param_groups_fn=lambda m, optim: transformer_param_groups(m, tcfg, optim),
        callbacks=[GradualUnfreeze(base, tcfg)] if tcfg.gradual_unfreeze and tcfg.freeze_layers else [],
        train_prefix=train_prefix,
        val_prefix=val_prefix,
    )


def _cached_prefix(
    base: Any, cfg: RunConfig, ids: list[list[int]], n_train: int, work_dir: Path
) -> tuple[Any, Any, dict[str, Any]]:
    """Both splits' frozen-prefix hidden states from the cache, computing what it lacks; the model
    then runs only the layers above the prefix."""
    from medsent.neural.prefix_cache import PrefixRows, PrefixStore, split_matches

    tcfg = cfg.transformer
    if not split_matches(base, sorted(ids, key=len)[-4:], tcfg.freeze_layers):
        raise ConfigError(
            f"'{tcfg.pretrained}' cannot be cut after layer {tcfg.freeze_layers} (the split forward pass "
            "does not match the whole one); set transformer.cache_frozen=off"
        )
    root = Path(tcfg.cache_dir) if tcfg.cache_dir else work_dir / "prefix_cache"
    store = PrefixStore(root, base, tcfg)
    rows = store.rows(ids, cfg.trainer.eval_batch_size, resolve_precision(cfg.trainer.precision, "cpu"))
    base.prefix_layers = tcfg.freeze_layers
    info = {
        "layers": tcfg.freeze_layers,
        "folder": str(store.folder),
        "reviews": len(ids),
        "computed": store.computed,
        "build_seconds": round(store.build_seconds, 1),
        "megabytes": round(store.nbytes() / 2**20, 1),
    }
    train = PrefixRows(rows.chunks, rows.where[:n_train])
    val = PrefixRows(rows.chunks, rows.where[n_train:])
    return train, val, info


@dataclass
class FitData:
    """One side of a fit: texts, their class ids (-1: no label) and the optional per-row extras a
    feature adds (extra target levels, a teacher's probabilities). A new feature adds a field here."""

    texts: Sequence[str]
    labels: np.ndarray
    targets: np.ndarray | None = None  # rows x extra target levels, -1 where missing
    soft: np.ndarray | None = None  # rows x classes of teacher probabilities (distillation)


@dataclass
class FitRequest:
    """Everything one neural fit needs: the config, both sides, and where checkpoints live."""

    cfg: RunConfig
    train: FitData
    val: FitData
    work_dir: Path
    resume: bool = False
    loggers: list[Any] = field(default_factory=list)


def fit_neural(request: FitRequest) -> NeuralFit:
    """Train with early stopping and return the best epoch's weights (not the last epoch's)."""
    cfg, work_dir, resume, loggers = request.cfg, request.work_dir, request.resume, request.loggers
    train_texts, train_labels = request.train.texts, request.train.labels
    train_targets, train_soft = request.train.targets, request.train.soft
    val_texts, val_labels, val_targets = request.val.texts, request.val.labels, request.val.targets
    validate_neural_config(cfg)
    spec = get_model_spec(cfg.model)
    tc = cfg.trainer
    if tc.num_threads:
        torch.set_num_threads(tc.num_threads)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    work_dir.mkdir(parents=True, exist_ok=True)
    if spec.family == "transformer":
        prep = _prepare_transformer(cfg, train_texts, val_texts, work_dir)
    elif spec.build is not None:
        prep = _prepare_word_model(cfg, train_texts, val_texts, work_dir, resume)
    else:
        raise ConfigError(f"model '{cfg.model}' is not trained by the neural engine")
    model = prep.model
    cuda = on_cuda(tc.accelerator)
    longest = max((len(x) for x in [*prep.train_ids, *prep.val_ids]), default=1)
    buckets = shape_buckets(prep.buckets, tc, max(max(prep.buckets), longest))
    dm = ReviewDataModule(
        EncodedDataset(prep.train_ids, train_labels.tolist(), train_targets, train_soft, prep.train_prefix),
        EncodedDataset(prep.val_ids, val_labels.tolist(), val_targets, prefix=prep.val_prefix),
        buckets,
        prep.pad_id,
        tc.batch_size,
        tc.eval_batch_size,
        cfg.seed,
        static_shapes=static_shapes(tc.pad_to, tc.accelerator),
        device_data=tc.device_data == "device" or (tc.device_data == "auto" and cuda),
    )
    if tc.compile:
        model = compile_network(model)
    labelled = train_labels[train_labels >= 0]
    class_loss = build_loss(cfg.loss, labelled)
    module = SentimentModule(
        model,
        class_loss,
        cfg.optim,
        cfg.scheduler,
        tc.monitor,
        cfg.seed,
        total_steps=stepping_batches(
            len(
                BucketBatchSampler(
                    [len(x) for x in prep.train_ids],
                    buckets,
                    tc.batch_size,
                    True,
                    cfg.seed,
                    world_size=tc.devices * tc.num_nodes,
                )
            ),
            tc,
        ),
        param_groups_fn=prep.param_groups_fn,
        task_loss=build_task_loss(cfg, class_loss, labelled)
        if train_soft is None
        else DistillLoss(class_loss, cfg.distill.temperature, cfg.distill.alpha),
    )
    mode = "max" if tc.monitor.endswith("f1") else "min"
    ckpt_dir = ckpt_dir_for(work_dir)
    checkpoint = ModelCheckpoint(
        dirpath=ckpt_dir,
        filename="best",
        monitor=tc.monitor,
        mode=mode,
        save_top_k=1,
        save_last=True,
        save_on_train_epoch_end=False,  # at validation end: the resume point Lightning restores cleanly
    )
    history_path = work_dir / HISTORY_FILE
    if not resume and history_path.exists():
        history_path.unlink()
    callbacks: list[Callback] = [EpochHistory(history_path), checkpoint, *prep.callbacks]
    if tc.checkpoint_minutes is not None:
        callbacks.append(TimedCheckpoint(ckpt_dir / RESUME_CKPT, tc.checkpoint_minutes, tc.accumulate))
    if tc.progress_bar:
        # Each refresh reads the loss off the device; on a GPU that is a sync every refresh.
        callbacks.append(run_progress_bar(tc.progress_refresh or (50 if cuda else 1)))
    if tc.early_stopping:
        rule: dict[str, Any] = {
            "monitor": tc.monitor,
            "mode": mode,
            "patience": tc.patience,
            "min_delta": tc.min_delta,
            "check_on_train_epoch_end": False,
        }
        callbacks.insert(1, EarlyStopping(**rule))
    world = tc.devices * tc.num_nodes
    precision = resolve_precision(tc.precision, tc.accelerator)
    trainer = L.Trainer(
        max_epochs=tc.max_epochs,
        accelerator=tc.accelerator,
        devices=tc.devices,
        num_nodes=tc.num_nodes,
        strategy="ddp" if world > 1 else "auto",
        precision=precision,  # type: ignore[arg-type]
        gradient_clip_val=tc.grad_clip,
        accumulate_grad_batches=tc.accumulate,
        callbacks=callbacks,
        logger=loggers or False,
        enable_progress_bar=tc.progress_bar,
        log_every_n_steps=tc.log_every_n_steps,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
        limit_train_batches=tc.limit_train_batches,
        default_root_dir=str(work_dir),
    )
    last = ckpt_dir / RESUME_CKPT
    ckpt_path = str(last) if resume and last.exists() else None
    if resume and ckpt_path is None:
        log.warning("no checkpoint in %s; starting from scratch", ckpt_dir)
    start = time.perf_counter()
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    wall = time.perf_counter() - start
    best_path = checkpoint.best_model_path if tc.early_stopping else ""
    if best_path and Path(best_path).exists():
        state = torch.load(best_path, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)
    history = read_history(history_path)
    best_score = checkpoint.best_model_score
    best_epoch = None
    if history and best_score is not None:
        target = float(best_score)
        best_epoch = int(min(history, key=lambda h: abs(h.get(tc.monitor, np.inf) - target))["epoch"])
    if not tc.early_stopping and history:  # the weights kept are the last epoch's
        best_epoch = int(history[-1]["epoch"])
        best_score = torch.tensor(history[-1].get(tc.monitor, np.nan))
    n_params = sum(p.numel() for p in model.parameters())
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    speeds = [h["train_samples_per_s"] for h in history if np.isfinite(h.get("train_samples_per_s", np.nan))]
    summary = {
        "precision": precision,
        "devices": world,
        "epochs_run": len(history),
        "best_epoch": best_epoch,
        "best_val_" + tc.monitor.removeprefix("val_"): float(best_score) if best_score is not None else None,
        "train_wall_seconds": wall,
        "train_samples_per_s": float(np.mean(speeds)) if speeds else None,
        "params_total": int(n_params),
        "params_trainable": int(n_train),
        "global_step": int(trainer.global_step),
        "planned_steps": int(module.total_steps or 0),
        **prep.info,
        "stopped_early": bool(
            trainer.early_stopping_callback and trainer.early_stopping_callback.stopped_epoch
        ),
    }
    model.eval()
    return NeuralFit(model=model.cpu(), save_model=prep.save_model, summary=summary, history=history)


def stepping_batches(batches: int, tc: Any) -> int:
    """Optimizer steps of a whole run as Lightning counts them (an epoch's batches on one DDP rank,
    cut by limit_train_batches, over accumulate, times max_epochs), without touching the data."""
    limit = tc.limit_train_batches
    if isinstance(limit, float) and limit <= 1.0:
        batches = int(batches * limit)
    elif limit is not None:
        batches = min(batches, int(limit))
    return max(math.ceil(batches / tc.accumulate) * tc.max_epochs, 1)


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


def compile_network(model: torch.nn.Module) -> torch.nn.Module:
    """torch.compile the network's forward in place (weights and state-dict keys stay the same, so
    checkpoints and saved runs are unchanged); static bucket shapes keep recompilations few."""
    compiled: Any = torch.compile(model.forward, dynamic=False)
    model.forward = compiled
    return model


def save_neural(fit: NeuralFit, model_dir: Path) -> None:
    """Safetensors weights plus the vocabulary or tokenizer: nothing that unpickles."""
    fit.save_model(fit.model, model_dir)


class NeuralFitter:
    """Registry fitter for every neural kind: the one Lightning engine, resumable from checkpoints."""

    resumable = True

    def check(self, cfg: RunConfig) -> None:
        validate_neural_config(cfg)

    def is_rank_zero(self) -> bool:
        return is_global_zero()

    def fit(
        self, cfg: RunConfig, splits: Any, model_dir: Path, work: Path, resume: bool, loggers: list[Any]
    ) -> dict[str, Any] | None:
        """Returns None on DDP ranks other than 0, which leave the run folder to rank 0."""
        import shutil

        from medsent.errors import DataError, TrainingError
        from medsent.neural.module import NonFiniteLossError

        if splits.val is None or splits.val.empty:
            raise DataError(
                "neural models need validation data for early stopping: --val-data FILE or val_frac > 0"
            )
        from medsent.neural.targets import check_targets, target_matrix, target_specs

        train_targets = val_targets = None
        soft = None
        if cfg.distill.teacher is not None:
            if cfg.targets.active:
                raise ConfigError("distillation and extra targets (targets.*) cannot be combined yet")
            soft = splits.train[list(SOFT_COLUMNS)].to_numpy(dtype=np.float32)
        elif not cfg.targets.active and (splits.train["label"] < 0).any():
            # Rows with auxiliary ratings only feed auxiliary heads; without any they teach nothing.
            log.info(
                "no auxiliary targets: %d rows without a class label left out",
                int((splits.train["label"] < 0).sum()),
            )
            splits = dataclasses.replace(
                splits, train=splits.train[splits.train["label"] >= 0].reset_index(drop=True)
            )
        if cfg.targets.active:
            check_targets(cfg, splits.train, splits.val)
            specs = target_specs(cfg)
            train_targets, val_targets = target_matrix(splits.train, specs), target_matrix(splits.val, specs)
            useful = (splits.train["label"] >= 0).to_numpy() | (train_targets >= 0).any(axis=1)
            if not useful.all():  # e.g. effectiveness-only rows when no effectiveness head is on
                log.info("%d rows carry no label for any head; left out", int((~useful).sum()))
                splits = dataclasses.replace(splits, train=splits.train[useful].reset_index(drop=True))
                train_targets = train_targets[useful]
        try:
            fit = fit_neural(
                FitRequest(
                    cfg,
                    FitData(
                        splits.train["text"].tolist(), splits.train["label"].to_numpy(), train_targets, soft
                    ),
                    FitData(splits.val["text"].tolist(), splits.val["label"].to_numpy(), val_targets),
                    work,
                    resume=resume,
                    loggers=loggers,
                )
            )
        except NonFiniteLossError as exc:
            raise TrainingError(f"{exc}; last good checkpoint kept in {work / 'checkpoints'}") from None
        if not is_global_zero():
            return None
        save_neural(fit, model_dir)
        if (work / HISTORY_FILE).exists():
            shutil.copyfile(work / HISTORY_FILE, model_dir.parent / HISTORY_FILE)
        plot_history(fit.history, model_dir.parent)
        return fit.summary
