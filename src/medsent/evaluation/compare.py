"""`medsent compare`: every run scored on the same file, side by side, like the study's final table."""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medsent.core.errors import ConfigError, RunError
from medsent.core.labels import LABELS
from medsent.core.runs import write_json
from medsent.evaluation.analysis import confusion_heatmap, error_analysis
from medsent.evaluation.explain import explain_mistakes
from medsent.evaluation.metrics import compute_metrics
from medsent.evaluation.report import (
    heading,
    image,
    mistake_html,
    paragraph,
    save_figure,
    table,
    write_report,
)
from medsent.evaluation.tiers import sweep_plot, threshold_sweep, tier_table
from medsent.inference.predict import Predictor

COLUMNS = (
    "run",
    "model",
    "backend",
    "macro_f1",
    "neutral_f1",
    "kappa",
    "accuracy",
    "ece",
    "train_s",
    "params",
    "ms_per_review",
    "p50_ms_single",
)
DELTAS = ("macro_f1", "neutral_f1", "kappa", "accuracy")


@dataclass
class Scored:
    name: str
    run_dir: Path
    model: str
    proba: np.ndarray
    metrics: dict[str, Any]
    row: dict[str, Any] = field(default_factory=dict)
    analysis: dict[str, Any] = field(default_factory=dict)
    offsets: np.ndarray | None = None
    mistakes: list[dict[str, Any]] = field(default_factory=list)  # explained, with highlighted html


def count_params(pred: Predictor) -> int | None:
    """Parameters from the run's metrics, else from the loaded model."""
    stored = pred.run.metrics
    if isinstance(stored.get("params_total"), int):
        return int(stored["params_total"])
    n = getattr(pred.model, "n_params", None)
    if isinstance(n, int):
        return n
    members = getattr(pred.model, "members", None)  # runs made of runs cost what their members cost
    if members:
        counts = [count_params(m) for m in members]
        return None if any(c is None for c in counts) else sum(c for c in counts if c is not None)
    return None


def _train_seconds(pred: Predictor) -> float | None:
    value = pred.run.metrics.get("fit_seconds")
    return float(value) if isinstance(value, (int, float)) else None


def time_inference(pred: Predictor, texts: list[str], singles: int = 50) -> tuple[np.ndarray, float, float]:
    """Probabilities for all texts plus ms/review in batch and the median single-review latency."""
    pred.predict_proba(texts[:8])  # warm-up: lazy imports, first-call allocations
    start = time.perf_counter()
    proba = pred.predict_proba(texts)
    batch_ms = (time.perf_counter() - start) * 1000 / max(len(texts), 1)
    lat = []
    for text in texts[:singles]:
        t0 = time.perf_counter()
        pred.predict_proba([text])
        lat.append((time.perf_counter() - t0) * 1000)
    return proba, batch_ms, float(np.median(lat)) if lat else float("nan")


def _unique_names(run_dirs: list[Path]) -> list[str]:
    names: list[str] = []
    for run in run_dirs:
        base = run.resolve().name
        name, i = base, 2
        while name in names:
            name, i = f"{base}-{i}", i + 1
        names.append(name)
    return names


def _check_not_trained_on(pred: Predictor, name: str, sha256: str) -> None:
    files = pred.run.manifest.get("files", {})
    train = files.get("train") if isinstance(files, dict) else None
    if isinstance(train, dict) and train.get("sha256") == sha256:
        raise RunError(f"run '{name}' was trained on this very file; compare on held-out data")


def compare_runs(
    run_dirs: list[Path],
    data: Path,
    out: Path,
    data_layer: dict[str, Any] | None = None,
    baseline: str | None = None,
) -> dict[str, Any]:
    """Score each run on ``data``, write table (md/csv), plots, analysis and report.html into ``out``."""
    from medsent.core.runs import check_same_task, file_sha256
    from medsent.data.dataset import load_labeled_for

    if not run_dirs:
        raise ConfigError("compare needs at least one run folder")
    names = _unique_names(run_dirs)
    predictors = [Predictor(r) for r in run_dirs]
    check_same_task([p.config for p in predictors], names)
    base_name = names[0] if baseline is None else baseline
    if base_name not in names:
        raise ConfigError(f"--baseline '{baseline}' is not one of the runs: {', '.join(names)}")

    labeled = load_labeled_for(predictors[0].config, data, data_layer)
    sha = file_sha256(data)
    for pred, name in zip(predictors, names, strict=True):
        _check_not_trained_on(pred, name, sha)
    frame = labeled.frame
    texts = frame["text"].tolist()
    y = frame["label"].to_numpy()

    out.mkdir(parents=True, exist_ok=True)
    scored: list[Scored] = []
    for pred, name in zip(predictors, names, strict=True):
        proba, batch_ms, single_ms = time_inference(pred, texts)
        metrics = compute_metrics(y, proba, pred.offsets)
        metrics["tiers"] = tier_table(y, proba, pred.config.tiers, pred.offsets)
        model = pred.model_name
        row = {
            "run": name,
            "model": model,
            "backend": pred.backend,
            "macro_f1": metrics["macro_f1"],
            "neutral_f1": metrics["per_class"]["Neutral"]["f1"],
            "kappa": metrics["kappa"],
            "accuracy": metrics["accuracy"],
            "ece": metrics["ece"],
            "train_s": _train_seconds(pred),
            "params": count_params(pred),
            "ms_per_review": batch_ms,
            "p50_ms_single": single_ms,
            "calibrated": pred.temperature is not None,
        }
        analysis = error_analysis(frame, proba, pred.offsets)
        explained = explain_mistakes(pred, texts, analysis["confident_mistakes"])
        for plain, rich in zip(analysis["confident_mistakes"], explained, strict=False):
            plain["top_words"] = rich["top_words"]
        scored.append(
            Scored(name, pred.run_dir, model, proba, metrics, row, analysis, pred.offsets, explained)
        )

    base = next(s for s in scored if s.name == base_name)
    for s in scored:
        for key in DELTAS:
            s.row[f"d_{key}"] = s.row[key] - base.row[key]

    rows = [s.row for s in scored]
    columns = [*COLUMNS, *(f"d_{k}" for k in DELTAS)]
    _write_csv(out / "comparison.csv", rows, columns)
    (out / "comparison.md").write_text(_markdown(rows, columns, base_name, data, len(y)), encoding="utf-8")
    _bar_chart(rows, out / "comparison.png")
    sweep_plot(
        {s.name: threshold_sweep(y, s.proba, offsets=s.offsets) for s in scored}, out / "threshold_sweep.png"
    )
    for s in scored:
        confusion_heatmap(
            s.metrics["confusion_matrix"], out / f"confusion_{s.name}.png", f"{s.name} ({len(y)} reviews)"
        )
    summary = {
        "data": {"path": str(data), "sha256": sha, "n": len(y), **labeled.source},
        "baseline": base_name,
        "runs": {
            s.name: {"run_dir": str(s.run_dir), **s.row, "metrics": s.metrics, "analysis": s.analysis}
            for s in scored
        },
    }
    write_json(out / "comparison.json", summary)
    _html(out, scored, rows, columns, base_name, data, len(y))
    return summary


def _write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _cell(value: Any, key: str) -> str:
    if value is None:
        return "-"
    if key.startswith("d_"):
        return f"{value:+.4f}"
    if key in ("train_s",):
        return f"{value:,.0f}"
    if key in ("ms_per_review", "p50_ms_single"):
        return f"{value:.2f}"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _markdown(rows: list[dict[str, Any]], columns: list[str], base: str, data: Path, n: int) -> str:
    lines = [
        f"# Model comparison on {data.name} (n={n})",
        "",
        f"Deltas (d_*) are against `{base}`. ms_per_review: whole file in one call; "
        "p50_ms_single: median of single-review calls. train_s: fit time stored in the run.",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
    ]
    lines += ["| " + " | ".join(_cell(r.get(c), c) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _bar_chart(rows: list[dict[str, Any]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ("macro_f1", "neutral_f1", "kappa", "accuracy")
    width = 0.8 / max(len(rows), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(keys) + 0.4 * len(rows)), 3.8), dpi=110)
    x = np.arange(len(keys))
    for i, row in enumerate(rows):
        values = [row[k] for k in keys]
        bars = ax.bar(x + (i - (len(rows) - 1) / 2) * width, values, width, label=row["run"])
        ax.bar_label(bars, fmt="%.3f", fontsize=6, padding=1)
    ax.set_xticks(x, keys)
    ax.set_ylim(0, 1)
    ax.set_ylabel("score")
    ax.legend(fontsize=7, ncols=min(len(rows), 4), loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, path)


def _html(
    out: Path,
    scored: list[Scored],
    rows: list[dict[str, Any]],
    columns: list[str],
    base: str,
    data: Path,
    n: int,
) -> Path:
    display = [{c: _cell(r.get(c), c) for c in columns} for r in rows]
    parts = [
        paragraph(f"{len(scored)} runs scored on {data} ({n} reviews). Deltas are against {base}."),
        heading("Comparison"),
        table(display, columns, text_cols=("run", "model", "backend")),
        image(out / "comparison.png", "scores per run"),
        heading("Confidence tiers"),
        table(
            [
                {"run": s.name, "tier": tier, **vals}
                for s in scored
                for tier, vals in s.metrics["tiers"].items()
            ],
            text_cols=("run", "tier"),
        ),
        image(out / "threshold_sweep.png", "coverage against accuracy"),
        heading("Per-class F1"),
        table(
            [{"run": s.name, **{k: v["f1"] for k, v in s.metrics["per_class"].items()}} for s in scored],
            ["run", *LABELS],
            text_cols=("run",),
        ),
    ]
    for s in scored:
        parts += [
            heading(f"Error analysis: {s.name}"),
            image(out / f"confusion_{s.name}.png", f"confusion matrix {s.name}"),
            heading("By review length (words)", 3),
            table(s.analysis["length"], text_cols=("words",)),
        ]
        for col in ("condition", "drug"):
            if s.analysis[col]:
                parts += [
                    heading(f"By {col} (worst macro-F1 first)", 3),
                    table(s.analysis[col], text_cols=(col,)),
                ]
        parts += [
            heading("Most confident mistakes, with the words behind the wrong answer", 3),
            *(mistake_html(m) for m in s.mistakes),
            table(
                s.analysis["confident_mistakes"][len(s.mistakes) :],
                ["confidence", "predicted", "true", "text"],
                text_cols=("predicted", "true", "text"),
            ),
        ]
    return write_report(out / "report.html", "medsent model comparison", parts)
