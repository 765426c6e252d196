"""One training run end to end: data -> splits -> fit -> score -> self-describing run folder."""

from __future__ import annotations

import logging
import platform
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medsent._version import __version__
from medsent.core.config import DataConfig, RunConfig
from medsent.core.labels import LABELS
from medsent.core.runs import HISTORY_FILE, RUN_FILE, RunWriter, read_json, write_json
from medsent.data.dataset import LabeledData, Splits, load_labeled, load_unlabeled, make_splits
from medsent.evaluation.metrics import compute_metrics, metrics_markdown
from medsent.inference.predict import Predictor
from medsent.models.registry import get_model_spec
from medsent.training.fitters import fitter_for
from medsent.training.tracking import copy_logs, log_final
from medsent.training.tracking import describe as describe_tracking
from medsent.training.tracking import fail as fail_tracking
from medsent.training.tracking import finish as finish_tracking
from medsent.training.tracking import start as start_tracking

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    run_dir: Path
    metrics: dict[str, Any]
    fit_seconds: float


@dataclass(frozen=True)
class AuxSource:
    """An extra training file and its column layer over the run's data config (e.g. a preset).

    ``unlabeled``: only its text is read (reviews for a teacher to label, ``medsent distill``);
    otherwise its rows carry auxiliary ratings and maybe labels (``--aux-data``).
    """

    path: Path
    layer: dict[str, Any]
    unlabeled: bool = False

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.path), "layer": self.layer, "unlabeled": self.unlabeled}


def load_aux(source: AuxSource, cfg: RunConfig) -> LabeledData:
    data_cfg = (
        DataConfig.model_validate({**cfg.data.model_dump(), **source.layer}) if source.layer else cfg.data
    )
    if source.unlabeled:
        return load_unlabeled(source.path, data_cfg, cfg.clean)
    return load_labeled(source.path, data_cfg, cfg.clean, require_label=False)


Prepare = Callable[[Splits, Path], tuple[Splits, dict[str, Any]]]


def work_dir_for(out: Path) -> Path:
    """Checkpoints of a neural run in progress live beside the run folder until it is committed."""
    return out.parent / f".{out.name}.work"


def _manifest(parts: dict[str, LabeledData | None], splits: Splits) -> dict[str, Any]:
    files = {}
    for role, data in parts.items():
        if data is not None:
            files[role] = {
                **data.source,
                "cleaning": data.report.to_dict(),
                "class_counts": data.class_counts(),
            }
    split_counts = {}
    for role, frame in (("train", splits.train), ("val", splits.val), ("test", splits.test)):
        if frame is not None:
            labels = frame["label"].to_numpy(dtype=int)
            counts = np.bincount(labels[labels >= 0], minlength=len(LABELS))
            split_counts[role] = {name: int(c) for name, c in zip(LABELS, counts, strict=True)}
    return {"files": files, "splits": splits.sizes(), "split_class_counts": split_counts, **splits.info}


def _report(cfg: RunConfig, manifest: dict[str, Any], metrics: dict[str, Any], fit_s: float) -> str:
    lines = [
        f"# medsent run: {cfg.model}",
        "",
        f"- created: {datetime.now(UTC).isoformat(timespec='seconds')}",
        f"- medsent {__version__}, Python {platform.python_version()}, {platform.machine()}",
        f"- fit time: {fit_s:.1f} s",
        f"- split sizes: {manifest['splits']}",
        f"- leakage guard removed: {manifest['leakage_removed']}",
        "",
    ]
    for role, info in manifest["files"].items():
        lines += [f"## Data: {role} ({info['path']})", "", _cleaning_md(info["cleaning"]), ""]
    if "epochs_run" in metrics:
        lines += _training_md(metrics)
    for role in ("val", "test"):
        if role in metrics:
            lines += [metrics_markdown(metrics[role], f"{role} metrics"), ""]
    return "\n".join(lines)


def _training_md(m: dict[str, Any]) -> list[str]:
    speed = m.get("train_samples_per_s")
    lines = [
        "## Training",
        "",
        f"- epochs run {m['epochs_run']}, best epoch {m['best_epoch']} (weights restored from it), "
        f"stopped early: {m['stopped_early']}",
        f"- precision {m['precision']}, devices {m['devices']}, wall {m['train_wall_seconds']:.1f} s, "
        + (f"{speed:.0f} training samples/s" if speed else "training samples/s n/a"),
        f"- parameters {m['params_total']:,} ({m['params_trainable']:,} trainable)"
        + (
            f"; vocabulary {m['vocab_size']:,} tokens covering {m['vocab_coverage']:.1%} of training tokens"
            if "vocab_size" in m
            else ""
        ),
        f"- per-epoch figures: `{HISTORY_FILE}`; plots: `curves.png`, `lr_schedule.png`",
        "",
        "![curves](curves.png)",
        "",
    ]
    return lines


def _cleaning_md(cleaning: dict[str, Any]) -> str:
    rows = ["| step | rows in | rows out | dropped | changed |", "|---|---:|---:|---:|---:|"]
    for s in cleaning["steps"]:
        rows.append(f"| {s['step']} | {s['rows_in']} | {s['rows_out']} | {s['dropped']} | {s['changed']} |")
    rows += [f"\n- {note}" for note in cleaning["notes"]]
    return "\n".join(rows)


def _override_layer(overrides: Mapping[str, Any] | Sequence[str] | None) -> dict[str, Any]:
    from medsent.core.config import parse_sets

    if overrides is None:
        return {}
    if isinstance(overrides, Mapping):
        return dict(overrides)
    if isinstance(overrides, str):
        return parse_sets([overrides])
    return parse_sets(list(overrides))


def train_config(
    model: str = "svm",
    *,
    preset: str | None = None,
    preset_config: str | None = None,
    config: str | Path | None = None,
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    layers: Sequence[Mapping[str, Any]] = (),
) -> RunConfig:
    """The resolved config for a run: model preset < YAML file < ``layers`` < ``overrides``.

    ``overrides`` is a nested mapping (``{"svm": {"C": 0.5}}``) or ``--set`` style strings
    (``["svm.C=0.5"]``).
    """
    from medsent.core.config import build_config, load_yaml, model_preset_layer
    from medsent.data.presets import data_layer

    spec = get_model_spec(model)
    stack: list[dict[str, Any]] = [model_preset_layer(spec.name, preset_config)]
    if config is not None:
        stack.append(load_yaml(Path(config)))
    base: dict[str, Any] = {"model": spec.name}
    if preset is not None:
        base["data"] = data_layer(preset)
    stack += [base, *(dict(layer) for layer in layers), _override_layer(overrides)]
    return build_config(*stack)


def train_run(
    cfg: RunConfig,
    train_path: Path,
    out: Path,
    val_path: Path | None = None,
    test_path: Path | None = None,
    overwrite: bool = False,
    resume: bool = False,
    aux: Sequence[AuxSource] = (),
    prepare: Prepare | None = None,
    resume_extra: dict[str, Any] | None = None,
) -> TrainResult:
    """Train, then score validation and (once) test, and commit the run folder atomically.

    ``aux``: extra training files whose rows may lack the class label (auxiliary ratings only, or
    unlabelled text); they join the training set after the leakage guard. ``prepare(splits, work)``
    may add columns to the splits before fitting (e.g. a teacher's probabilities) and returns what
    the manifest should record about it; ``resume_extra`` is kept for ``--resume``.
    """
    spec = get_model_spec(cfg.model)
    fitter = fitter_for(spec)
    work = work_dir_for(out)
    fitter.check(cfg)
    rank_zero = fitter.is_rank_zero()
    train_data = load_labeled(train_path, cfg.data, cfg.clean)
    val_data = load_labeled(val_path, cfg.data, cfg.clean) if val_path else None
    test_data = load_labeled(test_path, cfg.data, cfg.clean) if test_path else None
    aux_data = [load_aux(source, cfg) for source in aux]
    splits = make_splits(
        train_data.frame,
        val_data.frame if val_data else None,
        test_data.frame if test_data else None,
        cfg.split,
        cfg.seed,
        aux=pd.concat([d.frame for d in aux_data], ignore_index=True) if aux_data else None,
    )
    log.info("splits: %s", splits.sizes())
    prepared: dict[str, Any] = {}
    if prepare is not None:  # it makes what it needs under ``work``: a refusal leaves nothing behind
        splits, prepared = prepare(splits, work)
    if not rank_zero:
        # DDP worker: train alongside rank 0, which alone writes the run folder.
        fitter.fit(cfg, splits, work / "rank-scratch", work, resume, [])  # rank 0 logs
        return TrainResult(run_dir=out, metrics={}, fit_seconds=0.0)
    writer = RunWriter(out, overwrite=overwrite or resume)
    tracking = None
    try:
        model_dir = writer.path / "model"
        model_dir.mkdir()
        if fitter.resumable or cfg.tracking.loggers:
            work.mkdir(parents=True, exist_ok=True)
        tracking = start_tracking(cfg, work, out.name, resume)
        if fitter.resumable:
            write_json(
                work / "resume.json",
                {
                    "config": cfg.model_dump(mode="json"),
                    "train": str(train_path),
                    "val": str(val_path) if val_path else None,
                    "test": str(test_path) if test_path else None,
                    "aux": [a.describe() for a in aux],
                    "out": str(out),
                    **(resume_extra or {}),
                },
            )
        start = time.perf_counter()
        extra = fitter.fit(cfg, splits, model_dir, work, resume, tracking.loggers) or {}
        fit_s = time.perf_counter() - start
        writer.write_config(cfg)
        writer.write_labels()
        parts: dict[str, LabeledData | None] = {"train": train_data, "val": val_data, "test": test_data}
        parts.update({f"aux_{i}": d for i, d in enumerate(aux_data)})
        manifest = {**_manifest(parts, splits), **prepared}
        writer.write_manifest(manifest)
        # Score through the same loader that predict/evaluate use, so the saved artifact is what is measured.
        write_json(writer.path / RUN_FILE, {"model": cfg.model, "family": spec.family})
        predictor = Predictor(writer.path)
        metrics: dict[str, Any] = {"fit_seconds": fit_s, **extra}
        for role, frame in (("val", splits.val), ("test", splits.test)):
            if frame is not None and len(frame):
                start = time.perf_counter()
                proba = predictor.predict_proba(frame["text"].tolist())
                elapsed = time.perf_counter() - start
                metrics[role] = compute_metrics(frame["label"].to_numpy(), proba)
                metrics[role]["predict_reviews_per_s"] = len(frame) / max(elapsed, 1e-9)
        if tracking.loggers:
            metrics["tracking"] = describe_tracking(tracking)
            log_final(tracking, metrics)
            copy_logs(tracking, writer.path)
        writer.write_metrics(metrics)
        (writer.path / "report.md").write_text(_report(cfg, manifest, metrics, fit_s), encoding="utf-8")
        run_dir = writer.commit(
            {"model": cfg.model, "family": spec.family, "created": datetime.now(UTC).isoformat()}
        )
    except BaseException as exc:
        writer.abort()
        if tracking is not None and isinstance(exc, Exception):
            fail_tracking(tracking)
        raise
    finish_tracking(tracking, run_dir)
    if work.exists():
        shutil.rmtree(work, ignore_errors=True)
    return TrainResult(run_dir=run_dir, metrics=metrics, fit_seconds=fit_s)


def resume_args(out: Path) -> dict[str, Any]:
    """What a killed neural run saved about itself, for ``medsent train --resume RUN_DIR``."""
    info = read_json(work_dir_for(out) / "resume.json")
    return dict(info)
