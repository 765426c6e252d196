"""Training any neural model with Lightning: precision, clipping, accumulation, early stopping on
validation macro-F1, best/last checkpoints, resume, DDP, per-epoch history and plots."""

from __future__ import annotations

import logging
import math
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

from medsent.core.config import RunConfig
from medsent.core.errors import ConfigError
from medsent.core.runs import HISTORY_FILE
from medsent.inference.neural import WEIGHTS, text_view
from medsent.models.registry import get_model_spec
from medsent.neural.losses import DistillLoss, build_loss
from medsent.neural.targets import TaskNet, base_of, build_task_loss, save_task_heads, wrap_for_targets
from medsent.neural.vocab import PAD_ID, WordVocab
from medsent.training.callbacks import (
    EpochHistory,
    GradualUnfreeze,
    TimedCheckpoint,
    read_history,
    run_progress_bar,
)
from medsent.training.data import BucketBatchSampler, EncodedDataset, ReviewDataModule
from medsent.training.module import SentimentModule
from medsent.training.prefix_cache import cache_active
from medsent.training.schedulers import check_scheduler_name

log = logging.getLogger(__name__)

RESUME_CKPT = "last.ckpt"


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
    from medsent.training.prefix_cache import PrefixRows, PrefixStore, split_matches

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


def compile_network(model: torch.nn.Module) -> torch.nn.Module:
    """torch.compile the network's forward in place (weights and state-dict keys stay the same, so
    checkpoints and saved runs are unchanged); static bucket shapes keep recompilations few."""
    compiled: Any = torch.compile(model.forward, dynamic=False)
    model.forward = compiled
    return model


def save_neural(fit: NeuralFit, model_dir: Path) -> None:
    """Safetensors weights plus the vocabulary or tokenizer: nothing that unpickles."""
    fit.save_model(fit.model, model_dir)
