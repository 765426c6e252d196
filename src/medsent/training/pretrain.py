"""`medsent pretrain`: domain-adaptive pretraining (continued masked-LM training) of an encoder.

The encoder reads patient reviews (pool, effectiveness-only reviews, AskaPatient, anything a user
brings) with 15% of the tokens masked, on the same Lightning engine as fine-tuning: precision,
gradient accumulation, a progress bar, checkpoints every N steps that ``--resume`` continues from
after a kill. Validation and test files are refused as inputs and their reviews are removed from the
corpus, so the encoder never reads the reviews it is later judged on. The result is a Hugging Face
folder that ``medsent train --pretrained FOLDER`` fine-tunes.
"""

from __future__ import annotations

import csv
import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch.utils.data import DataLoader, Dataset

from medsent.core.config import CleanConfig, PretrainConfig, SchedulerConfig
from medsent.core.errors import ConfigError, DataError, RunError
from medsent.core.runs import atomic_folder, file_sha256, read_json, write_json
from medsent.data.clean import dedupe_key, normalize_text, word_count
from medsent.data.io import read_table
from medsent.training.data import BucketBatchSampler
from medsent.training.fit import resolve_precision
from medsent.training.schedulers import build_scheduler, param_groups

log = logging.getLogger(__name__)

SUMMARY_FILE = "pretrain.json"
HISTORY_FILE = "pretrain_history.csv"


def work_dir_for(out: Path) -> Path:
    return out.parent / f".{out.name}.work"


def _texts_of(path: Path, text_col: str) -> list[str]:
    frame = read_table(path).frame
    col = next((c for c in (text_col, "review", "text") if c in frame.columns), None)
    if col is None:
        raise DataError(
            f"{path.name}: no text column '{text_col}' (columns found: {', '.join(frame.columns)})"
        )
    return [v for v in frame[col].tolist() if isinstance(v, str)]


def build_corpus(
    files: Sequence[Path], held_out: Sequence[Path], cfg: PretrainConfig, clean: CleanConfig
) -> tuple[list[str], dict[str, Any]]:
    """Cleaned, deduplicated review texts of ``files``, none of them equal to a held-out review."""
    if not files:
        raise DataError("pretrain needs at least one --data file")
    held_sha = {file_sha256(p): p for p in held_out}
    for path in files:
        sha = file_sha256(path)
        if sha in held_sha:
            raise DataError(
                f"{path} is the held-out file {held_sha[sha]} (validation or test); refusing to read it"
            )
    held_keys: set[str] = set()
    for path in held_out:
        held_keys.update(dedupe_key(normalize_text(t, clean)) for t in _texts_of(path, cfg.text_col))
    seen: set[str] = set()
    texts: list[str] = []
    stats: dict[str, Any] = {"files": {}, "held_out_files": [str(p) for p in held_out]}
    removed_held = 0
    for path in files:
        raw = _texts_of(path, cfg.text_col)
        kept = 0
        for text in raw:
            text = normalize_text(text, clean)
            if word_count(text) < max(clean.min_words, 1):
                continue
            key = dedupe_key(text)
            if key in held_keys:
                removed_held += 1
                continue
            if key in seen:
                continue
            seen.add(key)
            texts.append(text)
            kept += 1
        stats["files"][str(path)] = {"sha256": file_sha256(path), "rows": len(raw), "reviews_kept": kept}
    stats["removed_as_held_out"] = removed_held
    stats["reviews"] = len(texts)
    if len(texts) < 10:
        raise DataError(f"pretraining needs at least 10 reviews after cleaning; found {len(texts)}")
    return texts, stats


class _Encoded(Dataset[dict[str, list[int]]]):
    def __init__(self, ids: list[list[int]]) -> None:
        self.ids = ids

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return {"input_ids": self.ids[i]}


class MaskedLMModule(L.LightningModule):
    """Masked-LM loss, AdamW without decay on biases and norms, linear warmup and decay per step."""

    def __init__(self, model: torch.nn.Module, cfg: PretrainConfig) -> None:
        super().__init__()
        self.model = model
        self.cfg = cfg
        self._losses: list[torch.Tensor] = []
        self._val_losses: list[torch.Tensor] = []

    def on_train_epoch_start(self) -> None:
        torch.manual_seed(self.cfg.seed * 7919 + self.current_epoch)  # masks depend on (seed, epoch)
        sampler: Any = getattr(self.trainer.train_dataloader, "batch_sampler", None)
        if sampler is not None and hasattr(sampler, "set_epoch"):
            sampler.set_epoch(self.current_epoch)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.model(**batch).loss
        self._losses.append(loss.detach())
        self.log("loss", loss.detach(), on_step=True, prog_bar=True, batch_size=len(batch["input_ids"]))
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._val_losses.append(self.model(**batch).loss.detach())

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking or not self._val_losses:
            self._val_losses = []
            return
        val = float(torch.stack(self._val_losses).float().mean())
        self._val_losses = []
        train = float(torch.stack(self._losses).float().mean()) if self._losses else float("nan")
        self._losses = []
        self.log_dict(
            {"val_mlm_loss": val, "val_perplexity": float(np.exp(min(val, 50.0))), "train_mlm_loss": train}
        )

    def configure_optimizers(self) -> Any:
        opt = torch.optim.AdamW(param_groups(self.model, self.cfg.weight_decay), lr=self.cfg.lr)
        sched = build_scheduler(
            opt,
            SchedulerConfig(name="linear_warmup", warmup_ratio=self.cfg.warmup_ratio),
            int(self.trainer.estimated_stepping_batches),
            "val_mlm_loss",
        )
        return {"optimizer": opt, "lr_scheduler": sched} if sched else opt


class _History(Callback):
    def __init__(self, path: Path) -> None:
        self.path = path
        self.t0 = time.perf_counter()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        m = trainer.callback_metrics
        if "val_mlm_loss" not in m:
            return
        row = {
            "step": trainer.global_step,
            "train_mlm_loss": float(m.get("train_mlm_loss", float("nan"))),
            "val_mlm_loss": float(m["val_mlm_loss"]),
            "val_perplexity": float(m["val_perplexity"]),
            "seconds": time.perf_counter() - self.t0,
        }
        rows = [r for r in _rows(self.path) if int(r["step"]) < row["step"]]
        with self.path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(row))
            writer.writeheader()
            writer.writerows([*rows, row])


def pretrain(
    files: Sequence[Path],
    out: Path,
    cfg: PretrainConfig,
    held_out: Sequence[Path] = (),
    clean: CleanConfig | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Continue masked-LM training of ``cfg.pretrained`` on the files' reviews; write a HF folder."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer, DataCollatorForLanguageModeling

    from medsent.neural.hf import _offline, resolve_pretrained

    clean = clean or CleanConfig()
    work = work_dir_for(out)
    if out.exists() and not overwrite:
        raise RunError(f"{out} already exists; pass --overwrite or choose another --out")
    if resume and not (work / "resume.json").exists():
        raise RunError(f"nothing to resume: {work / 'resume.json'} not found")
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    source = resolve_pretrained(cfg.pretrained)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=_offline())
        model = AutoModelForMaskedLM.from_pretrained(source, local_files_only=_offline())
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot load a masked-LM encoder from '{cfg.pretrained}': {str(exc).splitlines()[0]}"
        ) from None
    if tokenizer.mask_token is None:
        raise ConfigError(f"'{cfg.pretrained}' has no mask token; masked-LM pretraining needs one")
    texts, stats = build_corpus(files, held_out, cfg, clean)
    work.mkdir(parents=True, exist_ok=True)
    write_json(
        work / "resume.json",
        {
            "config": cfg.model_dump(mode="json"),
            "files": [str(p) for p in files],
            "held_out": [str(p) for p in held_out],
            "out": str(out),
        },
    )
    ids = tokenizer(texts, truncation=True, max_length=cfg.max_length)["input_ids"]
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(len(ids))
    n_val = round(len(ids) * cfg.holdout_frac) if cfg.holdout_frac > 0 else 0
    val_idx, train_idx = order[:n_val], order[n_val:]
    buckets = [32, 64, 96, 128, 160, 192, 224, 256, 384, 512, cfg.max_length]
    buckets = sorted({b for b in buckets if b <= cfg.max_length})
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=cfg.mlm_probability)
    train_ids = [ids[i] for i in train_idx]
    val_ids = [ids[i] for i in val_idx]
    train_loader = DataLoader(
        _Encoded(train_ids),
        batch_sampler=BucketBatchSampler(
            [len(x) for x in train_ids], buckets, cfg.batch_size, True, cfg.seed
        ),
        collate_fn=collator,
    )
    val_loaders = []
    if val_ids:
        val_loaders.append(
            DataLoader(
                _Encoded(val_ids),
                batch_sampler=BucketBatchSampler(
                    [len(x) for x in val_ids], buckets, cfg.batch_size, False, 0
                ),
                collate_fn=DataCollatorForLanguageModeling(
                    tokenizer, mlm_probability=cfg.mlm_probability, seed=0
                ),
            )
        )
    module = MaskedLMModule(model.train(), cfg)
    ckpt_dir = work / "checkpoints"
    checkpoint = ModelCheckpoint(
        dirpath=ckpt_dir, save_last=True, save_top_k=0, every_n_train_steps=cfg.checkpoint_every_n_steps
    )
    trainer = L.Trainer(
        max_epochs=cfg.epochs,
        max_steps=cfg.max_steps or -1,
        accelerator=cfg.accelerator,
        devices=1,
        precision=resolve_precision(cfg.precision, cfg.accelerator),  # type: ignore[arg-type]
        accumulate_grad_batches=cfg.accumulate,
        gradient_clip_val=1.0,
        callbacks=[checkpoint, _History(work / HISTORY_FILE)],
        logger=False,
        enable_progress_bar=cfg.progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
        default_root_dir=str(work),
    )
    last = ckpt_dir / "last.ckpt"
    start = time.perf_counter()
    trainer.fit(
        module, train_loader, val_loaders or None, ckpt_path=str(last) if resume and last.exists() else None
    )
    seconds = time.perf_counter() - start
    done = [r for r in _rows(work / HISTORY_FILE) if int(r["step"]) == trainer.global_step]
    if val_loaders and not done:  # stopped by max_steps mid-epoch: score the held-out reviews once more
        trainer.validate(module, val_loaders, verbose=False)
    history = []
    if (work / HISTORY_FILE).exists():
        with (work / HISTORY_FILE).open(encoding="utf-8") as fh:
            history = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(fh)]
    summary = {
        "pretrained": cfg.pretrained,
        "config": cfg.model_dump(mode="json"),
        "corpus": stats,
        "train_reviews": len(train_ids),
        "holdout_reviews": len(val_ids),
        "steps": int(trainer.global_step),
        "epochs": int(trainer.current_epoch),
        "seconds": seconds,
        "reviews_per_s": int(trainer.global_step) * cfg.batch_size * cfg.accumulate / max(seconds, 1e-9),
        "history": history,
        "precision": str(trainer.precision),
    }
    with atomic_folder(out) as tmp:
        trained: Any = module.model
        trained.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        write_json(tmp / SUMMARY_FILE, summary)
        if (work / HISTORY_FILE).exists():
            shutil.copyfile(work / HISTORY_FILE, tmp / HISTORY_FILE)
    shutil.rmtree(work, ignore_errors=True)
    return summary


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def resume_info(out: Path) -> dict[str, Any]:
    return dict(read_json(work_dir_for(out) / "resume.json"))
