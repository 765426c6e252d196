"""The metrics every model is judged by; macro-F1 first, because accuracy hides a weak Neutral class."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    cohen_kappa_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from medsent.core.labels import LABELS
from medsent.inference.decisions import decide


def expected_calibration_error(y_true: np.ndarray, proba: np.ndarray, n_bins: int = 15) -> float:
    """Top-label ECE with equal-width confidence bins (Guo et al., 2017)."""
    if len(y_true) == 0:
        return float("nan")
    conf = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == y_true).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        in_bin = idx == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - conf[in_bin].mean())
    return float(ece)


def macro_f1_many(y: np.ndarray, pred: np.ndarray, k: int = 3) -> np.ndarray:
    """Macro-F1 along the last axis for a batch of label vectors at once (bootstrap resamples,
    candidate decision rules), without sklearn's per-call overhead."""
    y = np.atleast_2d(y)
    pred = np.atleast_2d(pred)
    f1s = [class_f1(y, pred, c) for c in range(k)]
    return np.mean(f1s, axis=0)


def class_f1(y: np.ndarray, pred: np.ndarray, c: int) -> np.ndarray:
    """F1 of class ``c`` along the last axis, batched like ``macro_f1_many``."""
    y = np.atleast_2d(y)
    pred = np.atleast_2d(pred)
    tp = ((pred == c) & (y == c)).sum(-1)
    denom = 2 * tp + ((pred == c) & (y != c)).sum(-1) + ((pred != c) & (y == c)).sum(-1)
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)


def compute_metrics(
    y_true: np.ndarray, proba: np.ndarray, offsets: np.ndarray | None = None
) -> dict[str, Any]:
    """All headline metrics from true ids and predicted probabilities (rows sum to 1).

    ``offsets``: the run's macro-F1 decision rule (see ``decision``); ECE stays top-label.
    """
    y_true = np.asarray(y_true, dtype=int)
    proba = np.asarray(proba, dtype=float)
    y_pred = decide(proba, offsets)
    labels = list(range(len(LABELS)))
    prec, rec, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    per_class = {
        name: {
            "precision": float(prec[i]),
            "recall": float(rec[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(LABELS)
    }
    kappa = cohen_kappa_score(y_true, y_pred, labels=labels) if len(set(y_true) | set(y_pred)) > 1 else 0.0
    return {
        "n": len(y_true),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "kappa": float(kappa),
        "ece": expected_calibration_error(y_true, proba),
        "per_class": per_class,
        "labels": list(LABELS),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def metrics_markdown(metrics: dict[str, Any], title: str) -> str:
    """A compact markdown block: headline figures, per-class table, confusion matrix."""
    lines = [
        f"### {title} (n = {metrics['n']})",
        "",
        "| macro-F1 | weighted-F1 | accuracy | kappa | ECE |",
        "|---:|---:|---:|---:|---:|",
        f"| {metrics['macro_f1']:.4f} | {metrics['weighted_f1']:.4f} | {metrics['accuracy']:.4f} "
        f"| {metrics['kappa']:.4f} | {metrics['ece']:.4f} |",
        "",
        "| class | precision | recall | F1 | support |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, row in metrics["per_class"].items():
        lines.append(
            f"| {name} | {row['precision']:.4f} | {row['recall']:.4f} | {row['f1']:.4f} | {row['support']} |"
        )
    lines += ["", "Confusion matrix (rows = true, columns = predicted):", ""]
    lines.append("| | " + " | ".join(LABELS) + " |")
    lines.append("|---|" + "---:|" * len(LABELS))
    for name, row in zip(LABELS, metrics["confusion_matrix"], strict=True):
        lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines)
