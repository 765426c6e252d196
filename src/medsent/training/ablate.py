"""`medsent ablate`: switch each technique of a preset off, one at a time, over several seeds.

Each variant x seed is a real training run through the same code as `medsent train`; its validation
probabilities are kept so the difference to the full preset gets a paired bootstrap confidence
interval (same resampled reviews for both, averaged over seeds). A killed ablation resumes: finished
variant/seed pairs are read back instead of retrained.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medsent.core.config import RunConfig, build_config
from medsent.core.errors import ConfigError
from medsent.core.labels import LABELS
from medsent.core.runs import read_json, write_json
from medsent.evaluation.metrics import class_f1, macro_f1_many

log = logging.getLogger(__name__)

FULL = "full"
Override = Callable[[RunConfig], dict[str, Any] | None]


def _dropout(cfg: RunConfig) -> dict[str, Any] | None:
    if cfg.model == "bilstm":
        b = cfg.bilstm
        if max(b.embed_dropout, b.recurrent_dropout, b.output_dropout, b.fc_dropout) == 0:
            return None
        zero = {"embed_dropout": 0.0, "recurrent_dropout": 0.0, "output_dropout": 0.0, "fc_dropout": 0.0}
        return {"bilstm": zero}
    if cfg.model == "textcnn":
        return {"textcnn": {"dropout": 0.0}} if cfg.textcnn.dropout > 0 else None
    if cfg.model == "transformer":
        return {"transformer": {"dropout": 0.0}} if cfg.transformer.dropout > 0 else None
    return None


def _bilstm_field(name: str) -> Override:
    def off(cfg: RunConfig) -> dict[str, Any] | None:
        if cfg.model != "bilstm" or getattr(cfg.bilstm, name) == 0:
            return None
        return {"bilstm": {name: 0.0}}

    return off


def _label_smoothing(cfg: RunConfig) -> dict[str, Any] | None:
    if not cfg.loss.name.startswith("label_smoothing") or cfg.loss.smoothing == 0:
        return None
    return {"loss": {"name": "weighted_ce" if cfg.loss.class_weights is not None else "ce"}}


def _focal(cfg: RunConfig) -> dict[str, Any] | None:
    if cfg.loss.name != "focal":
        return None
    return {"loss": {"name": "weighted_ce" if cfg.loss.class_weights is not None else "ce"}}


def _class_weights(cfg: RunConfig) -> dict[str, Any] | None:
    if cfg.loss.name == "ce" or cfg.loss.class_weights is None:
        return None
    return {
        "loss": {"name": "ce" if cfg.loss.name == "weighted_ce" else cfg.loss.name, "class_weights": None}
    }


def _flag(section: str, name: str, model: str) -> Override:
    def off(cfg: RunConfig) -> dict[str, Any] | None:
        if cfg.model != model or not getattr(getattr(cfg, section), name):
            return None
        return {section: {name: False}}

    return off


def _grad_clip(cfg: RunConfig) -> dict[str, Any] | None:
    return {"trainer": {"grad_clip": None}} if cfg.trainer.grad_clip else None


def _scheduler(cfg: RunConfig) -> dict[str, Any] | None:
    return {"scheduler": {"name": "constant"}} if cfg.scheduler.name != "constant" else None


def _weight_decay(cfg: RunConfig) -> dict[str, Any] | None:
    return {"optim": {"weight_decay": 0.0}} if cfg.optim.weight_decay > 0 else None


def _early_stopping(cfg: RunConfig) -> dict[str, Any] | None:
    return {"trainer": {"early_stopping": False}} if cfg.trainer.early_stopping else None


def _freezing(cfg: RunConfig) -> dict[str, Any] | None:
    t = cfg.transformer
    if cfg.model != "transformer" or (t.freeze_layers == 0 and not t.freeze_embeddings):
        return None
    return {"transformer": {"freeze_layers": 0, "freeze_embeddings": False}}


def _discriminative_lr(cfg: RunConfig) -> dict[str, Any] | None:
    t = cfg.transformer
    if cfg.model != "transformer" or (t.layer_lr_decay == 1.0 and t.layer_lrs is None and t.head_lr is None):
        return None
    return {"transformer": {"layer_lr_decay": 1.0, "layer_lrs": None, "head_lr": None, "embeddings_lr": None}}


def _warmup(cfg: RunConfig) -> dict[str, Any] | None:
    if cfg.scheduler.name != "linear_warmup" or cfg.scheduler.warmup_ratio == 0:
        return None
    return {"scheduler": {"warmup_ratio": 0.0}}


# Technique name -> the config change that switches it off (None where the preset does not use it).
TECHNIQUES: dict[str, Override] = {
    "dropout": _dropout,
    "embed_dropout": _bilstm_field("embed_dropout"),
    "recurrent_dropout": _bilstm_field("recurrent_dropout"),
    "output_dropout": _bilstm_field("output_dropout"),
    "label_smoothing": _label_smoothing,
    "focal": _focal,
    "class_weights": _class_weights,
    "layer_norm": _flag("bilstm", "layer_norm", "bilstm"),
    "batch_norm": _flag("textcnn", "batch_norm", "textcnn"),
    "grad_clip": _grad_clip,
    "scheduler": _scheduler,
    "weight_decay": _weight_decay,
    "early_stopping": _early_stopping,
    "freezing": _freezing,
    "discriminative_lr": _discriminative_lr,
    "warmup": _warmup,
}
DEFAULT_SKIP = ("embed_dropout", "recurrent_dropout", "output_dropout")  # covered by "dropout" by default


def applicable(cfg: RunConfig) -> dict[str, dict[str, Any]]:
    out = {}
    for name, fn in TECHNIQUES.items():
        layer = fn(cfg)
        if layer is not None:
            out[name] = layer
    return out


def plan_variants(
    cfg: RunConfig, techniques: list[str] | None, extra: dict[str, dict[str, Any]] | None = None
) -> dict[str, dict[str, Any]]:
    """The full preset plus one variant per technique switched off; refuses names the preset lacks.

    ``extra``: named variants of your own (levers switched on, e.g. {"ordinal": {"targets": ...}});
    with ``techniques=[]`` they are the only variants besides the full preset.
    """
    extra = extra or {}
    clash = [n for n in extra if n == FULL or n.startswith("no_")]
    if clash:
        raise ConfigError(f"variant name(s) {', '.join(clash)} are reserved; choose another")
    usable = applicable(cfg)
    if techniques == [] and extra:
        return {FULL: {}, **extra}
    if techniques is None:
        chosen = [t for t in usable if t not in DEFAULT_SKIP]
    else:
        unknown = [t for t in techniques if t not in TECHNIQUES]
        if unknown:
            raise ConfigError(f"unknown technique(s) {', '.join(unknown)}; known: {', '.join(TECHNIQUES)}")
        missing = [t for t in techniques if t not in usable]
        if missing:
            raise ConfigError(
                f"technique(s) {', '.join(missing)} are not used by this {cfg.model} preset; "
                f"can switch off: {', '.join(usable)}"
            )
        chosen = techniques
    if not chosen and not extra:
        raise ConfigError(f"this {cfg.model} preset uses none of the techniques ablate can switch off")
    return {FULL: {}, **{f"no_{t}": usable[t] for t in chosen}, **extra}


def paired_bootstrap(
    y: np.ndarray,
    base: list[np.ndarray],
    other: list[np.ndarray],
    metric: str,
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean over seeds of (other - base) and its 95% interval, reviews resampled jointly for both."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(y), size=(n_boot, len(y)))
    yy = y[idx]

    def score(pred: np.ndarray) -> np.ndarray:
        p = pred[idx]
        return macro_f1_many(yy, p) if metric == "macro_f1" else class_f1(yy, p, LABELS.index("Neutral"))

    diffs = np.mean([score(o) - score(b) for b, o in zip(base, other, strict=True)], axis=0)
    point = float(
        np.mean(
            [
                (macro_f1_many(y, o) - macro_f1_many(y, b))[0]
                if metric == "macro_f1"
                else (class_f1(y, o, 1) - class_f1(y, b, 1))[0]
                for b, o in zip(base, other, strict=True)
            ]
        )
    )
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return point, float(lo), float(hi)


@dataclass
class SeedResult:
    variant: str
    seed: int
    macro_f1: float
    neutral_f1: float
    gap: float
    best_epoch: int | None
    fit_seconds: float
    pred: np.ndarray


def _gap(history: list[dict[str, Any]], best_epoch: int | None) -> float:
    """Train minus validation macro-F1 at the epoch whose weights were kept."""
    rows = [h for h in history if best_epoch is None or int(h["epoch"]) == best_epoch] or history[-1:]
    if not rows:
        return float("nan")
    h = rows[-1]
    return float(h.get("train_macro_f1", np.nan)) - float(h.get("val_macro_f1", np.nan))


def _run_one(
    cfg: RunConfig, train: Path, val: Path, folder: Path, keep_run: bool, aux: Sequence[Any] = ()
) -> dict[str, Any]:
    from medsent.data.dataset import load_labeled_for
    from medsent.inference.predict import Predictor
    from medsent.training.callbacks import read_history
    from medsent.training.train import train_run

    run_dir = folder / "run"
    result = train_run(cfg, train, run_dir, val_path=val, overwrite=True, aux=aux)
    m = result.metrics
    predictor = Predictor(run_dir)
    history = read_history(predictor.run.history) if predictor.run.history else []
    labeled = load_labeled_for(predictor.config, val)  # the evaluate path: the run's own mapping
    proba = predictor.predict_proba(labeled.frame["text"].tolist(), calibrated=False)
    pred = proba.argmax(axis=1)
    record = {
        "macro_f1": m["val"]["macro_f1"],
        "neutral_f1": m["val"]["per_class"]["Neutral"]["f1"],
        "gap": _gap(history, m.get("best_epoch")),
        "best_epoch": m.get("best_epoch"),
        "epochs_run": m.get("epochs_run"),
        "fit_seconds": result.fit_seconds,
        "pred": pred.tolist(),
        "proba": np.round(proba, 6).tolist(),
        "y": labeled.frame["label"].tolist(),
    }
    if not keep_run:
        shutil.rmtree(run_dir, ignore_errors=True)
    write_json(folder / "result.json", record)
    return record


def run_ablation(
    base_layers: list[dict[str, Any]],
    train: Path,
    val: Path,
    out: Path,
    techniques: list[str] | None = None,
    seeds: int = 3,
    keep_runs: bool = False,
    n_boot: int = 1000,
    extra: dict[str, dict[str, Any]] | None = None,
    aux: Sequence[Any] = (),
    offsets: bool = False,
) -> dict[str, Any]:
    """Train every variant x seed (resuming finished ones) and write the impact table and report."""
    if seeds < 1:
        raise ConfigError("--seeds must be at least 1")
    base_cfg = build_config(*base_layers)
    from medsent.models.registry import get_model_spec

    if get_model_spec(base_cfg.model).family == "sklearn":
        raise ConfigError("ablate switches off training techniques of neural models; the SVM has none")
    variants = plan_variants(base_cfg, techniques, extra)
    out.mkdir(parents=True, exist_ok=True)
    write_json(
        out / "plan.json", {"config": base_cfg.model_dump(mode="json"), "variants": variants, "seeds": seeds}
    )
    results: dict[str, list[dict[str, Any]]] = {}
    for variant, layer in variants.items():
        results[variant] = []
        for i in range(seeds):
            seed = base_cfg.seed + i
            folder = out / "variants" / variant / f"seed{seed}"
            done = folder / "result.json"
            if done.exists():
                record = read_json(done)
                log.info("ablate %s seed %d: done earlier (macro-F1 %.4f)", variant, seed, record["macro_f1"])
            else:
                folder.mkdir(parents=True, exist_ok=True)
                cfg = build_config(*base_layers, layer, {"seed": seed, "split": {"test_frac": 0.0}})
                log.info("ablate %s seed %d: training", variant, seed)
                record = _run_one(cfg, train, val, folder, keep_runs, aux)
                log.info("ablate %s seed %d: macro-F1 %.4f", variant, seed, record["macro_f1"])
            results[variant].append(record)
    y = np.asarray(results[FULL][0]["y"])
    if offsets:
        results.update(offset_variants(results, y))
    summary = summarise(results, y, n_boot)
    write_json(out / "ablation.json", {"variants": variants, "seeds": seeds, "rows": summary})
    pd.DataFrame(summary).to_csv(out / "ablation.csv", index=False)
    (out / "ablation.md").write_text(
        ablation_markdown(summary, base_cfg.model, seeds, len(y)), encoding="utf-8"
    )
    _plot(summary, out / "ablation.png")
    _html(out, summary, base_cfg, seeds, len(y), variants)
    return {"rows": summary}


def crossfit_predictions(proba: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """Each review's decision under offsets fitted on the other half of validation (2 folds)."""
    from medsent.evaluation.decision import _halves, fit_offsets
    from medsent.inference.decisions import decide

    pred = np.empty(len(y), dtype=int)
    a, b = _halves(y, np.random.default_rng(seed))
    for fit_idx, score_idx in ((a, b), (b, a)):
        pred[score_idx] = decide(proba[score_idx], fit_offsets(proba[fit_idx], y[fit_idx]))
    return pred


def offset_variants(
    results: dict[str, list[dict[str, Any]]], y: np.ndarray
) -> dict[str, list[dict[str, Any]]]:
    """``VARIANT+offsets``: each trained variant with the macro-F1 decision rule, cross-fitted (no new
    training: the offsets for a review are fitted on the other half of validation)."""
    from sklearn.metrics import f1_score

    out: dict[str, list[dict[str, Any]]] = {}
    for variant, recs in results.items():
        if "+offsets" in variant or any("proba" not in r for r in recs):
            continue
        rows = []
        for i, r in enumerate(recs):
            pred = crossfit_predictions(np.asarray(r["proba"]), y, seed=i)
            f1 = f1_score(y, pred, labels=[0, 1, 2], average=None, zero_division=0)
            rows.append(
                {**r, "pred": pred.tolist(), "macro_f1": float(f1.mean()), "neutral_f1": float(f1[1])}
            )
        out[f"{variant}+offsets"] = rows
    return out


def summarise(results: dict[str, list[dict[str, Any]]], y: np.ndarray, n_boot: int) -> list[dict[str, Any]]:
    base_preds = [np.asarray(r["pred"]) for r in results[FULL]]
    rows = []
    for variant, recs in results.items():
        mf1 = np.array([r["macro_f1"] for r in recs])
        nf1 = np.array([r["neutral_f1"] for r in recs])
        gap = np.array([r["gap"] for r in recs])
        row: dict[str, Any] = {
            "variant": variant,
            "seeds": len(recs),
            "macro_f1_mean": float(mf1.mean()),
            "macro_f1_sd": float(mf1.std(ddof=1)) if len(mf1) > 1 else 0.0,
            "neutral_f1_mean": float(nf1.mean()),
            "neutral_f1_sd": float(nf1.std(ddof=1)) if len(nf1) > 1 else 0.0,
            "gap_mean": float(np.nanmean(gap)),
            "gap_sd": float(np.nanstd(gap, ddof=1)) if len(gap) > 1 else 0.0,
            "fit_seconds_mean": float(np.mean([r["fit_seconds"] for r in recs])),
        }
        if variant != FULL:
            preds = [np.asarray(r["pred"]) for r in recs]
            d, lo, hi = paired_bootstrap(y, base_preds, preds, "macro_f1", n_boot)
            row.update({"d_macro_f1": d, "d_macro_f1_lo": lo, "d_macro_f1_hi": hi})
            d, lo, hi = paired_bootstrap(y, base_preds, preds, "neutral_f1", n_boot, seed=1)
            row.update({"d_neutral_f1": d, "d_neutral_f1_lo": lo, "d_neutral_f1_hi": hi})
        rows.append(row)
    return rows


def _pm(mean: float, sd: float) -> str:
    return f"{mean:.4f} ± {sd:.4f}"


def _ci(row: dict[str, Any], key: str) -> str:
    if f"d_{key}" not in row:
        return "-"
    return f"{row[f'd_{key}']:+.4f} [{row[f'd_{key}_lo']:+.4f}, {row[f'd_{key}_hi']:+.4f}]"


def display_rows(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [
        {
            "variant": r["variant"],
            "macro-F1 (mean ± sd)": _pm(r["macro_f1_mean"], r["macro_f1_sd"]),
            "Δ macro-F1 [95% CI]": _ci(r, "macro_f1"),
            "Neutral F1 (mean ± sd)": _pm(r["neutral_f1_mean"], r["neutral_f1_sd"]),
            "Δ Neutral F1 [95% CI]": _ci(r, "neutral_f1"),
            "train-val gap": _pm(r["gap_mean"], r["gap_sd"]),
            "fit s": f"{r['fit_seconds_mean']:.0f}",
        }
        for r in rows
    ]


def ablation_markdown(rows: list[dict[str, Any]], model: str, seeds: int, n: int) -> str:
    shown = display_rows(rows)
    cols = list(shown[0])
    lines = [
        f"# Ablation of the {model} preset ({seeds} seeds, validation n={n})",
        "",
        "Each `no_X` variant is the full preset with technique X switched off; other variants switch a "
        "lever on (`--variant`); `+offsets` rows apply the macro-F1 decision rule with offsets fitted on "
        "the other half of validation (cross-fitted). Δ is the variant minus the "
        "full preset, averaged over seeds; the interval is a paired bootstrap over validation reviews "
        "(1,000 resamples), so it covers review sampling; the seed-to-seed spread is the ± sd. "
        "Gap: train minus validation macro-F1 at the kept epoch.",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    lines += ["| " + " | ".join(r[c] for c in cols) + " |" for r in shown]
    return "\n".join(lines) + "\n"


def _plot(rows: list[dict[str, Any]], path: Path) -> Path:
    import matplotlib

    from medsent.evaluation.report import save_figure

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(rows) + 1.5), 3.6), dpi=110)
    x = np.arange(len(rows))
    ax.bar(
        x - 0.2,
        [r["macro_f1_mean"] for r in rows],
        0.4,
        yerr=[r["macro_f1_sd"] for r in rows],
        label="macro-F1",
    )
    ax.bar(
        x + 0.2,
        [r["neutral_f1_mean"] for r in rows],
        0.4,
        yerr=[r["neutral_f1_sd"] for r in rows],
        label="Neutral F1",
    )
    ax.set_xticks(x, [r["variant"] for r in rows], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("validation score (mean ± sd over seeds)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, path)


def _html(
    out: Path, rows: list[dict[str, Any]], cfg: RunConfig, seeds: int, n: int, variants: dict[str, Any]
) -> Path:
    from medsent.evaluation.report import heading, image, paragraph, table, write_report

    shown = display_rows(rows)
    parts = [
        paragraph(f"Model {cfg.model}, {seeds} seeds per variant, validation n={n}."),
        heading("Regularization impact"),
        table(shown, text_cols=("variant",)),
        image(out / "ablation.png", "ablation scores"),
        heading("What each variant changes"),
        table(
            [{"variant": k, "override": str(v) if v else "(the preset)"} for k, v in variants.items()],
            text_cols=("variant", "override"),
        ),
    ]
    return write_report(out / "report.html", f"medsent ablation: {cfg.model}", parts)
