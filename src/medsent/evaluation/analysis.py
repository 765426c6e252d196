"""Where a model fails: by review length, by condition and drug, and its most confident mistakes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from medsent.core.labels import LABELS
from medsent.evaluation.report import save_figure

LENGTH_EDGES = (0, 20, 50, 100, 200)  # words; the last bucket is open-ended


def _scores(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    labels = list(range(len(LABELS)))
    per = f1_score(y, pred, labels=labels, average=None, zero_division=0)
    return {
        "macro_f1": float(f1_score(y, pred, labels=labels, average="macro", zero_division=0)),
        "accuracy": float((y == pred).mean()) if len(y) else float("nan"),
        "neutral_f1": float(per[LABELS.index("Neutral")]),
    }


def length_buckets(texts: list[str], y: np.ndarray, pred: np.ndarray) -> list[dict[str, Any]]:
    """Metrics per word-count bucket: short reviews carry little signal, long ones get truncated."""
    words = np.array([len(t.split()) for t in texts])
    rows = []
    uppers: list[int | None] = [*LENGTH_EDGES[1:], None]
    for lo, hi in zip(LENGTH_EDGES, uppers, strict=True):
        mask = (words > lo) & (words <= hi) if hi is not None else words > lo
        if not mask.any():
            continue
        name = f"{lo + 1}-{hi}" if hi is not None else f">{lo}"
        rows.append({"words": name, "n": int(mask.sum()), **_scores(y[mask], pred[mask])})
    return rows


def by_group(
    frame: pd.DataFrame, column: str, y: np.ndarray, pred: np.ndarray, min_n: int = 20, top: int = 12
) -> list[dict[str, Any]]:
    """Metrics for the most frequent values of a column (condition, drug), worst macro-F1 first."""
    if column not in frame.columns:
        return []
    values = frame[column].fillna("").astype(str).str.strip().to_numpy()
    counts = pd.Series(values[values != ""]).value_counts()
    rows = []
    for value, n in counts.head(top).items():
        if n < min_n:
            break
        mask = values == value
        rows.append({column: str(value), "n": int(n), **_scores(y[mask], pred[mask])})
    return sorted(rows, key=lambda r: r["macro_f1"])


def confident_mistakes(
    texts: list[str], y: np.ndarray, proba: np.ndarray, k: int = 10, offsets: np.ndarray | None = None
) -> list[dict[str, Any]]:
    """Wrong answers given with the highest confidence: label noise or blind spots, worth reading."""
    from medsent.inference.decisions import decision_confidence

    pred, conf = decision_confidence(proba, offsets)
    wrong = np.flatnonzero(pred != y)
    order = wrong[np.argsort(-conf[wrong], kind="stable")][:k]
    return [
        {
            "row": int(i),
            "confidence": float(conf[i]),
            "predicted": LABELS[int(pred[i])],
            "true": LABELS[int(y[i])],
            "text": texts[i] if len(texts[i]) <= 400 else texts[i][:400] + "...",
        }
        for i in order
    ]


def error_analysis(
    frame: pd.DataFrame, proba: np.ndarray, offsets: np.ndarray | None = None
) -> dict[str, Any]:
    """Everything above for one model on one labelled frame (columns text, label, maybe drug/condition)."""
    from medsent.inference.decisions import decide

    texts = frame["text"].tolist()
    y = frame["label"].to_numpy()
    pred = decide(proba, offsets)
    return {
        "length": length_buckets(texts, y, pred),
        "condition": by_group(frame, "condition", y, pred),
        "drug": by_group(frame, "drug", y, pred),
        "confident_mistakes": confident_mistakes(texts, y, proba, offsets=offsets),
    }


def confusion_heatmap(matrix: list[list[int]], path: Path, title: str) -> Path:
    """Counts with row-normalised colour, so a small Neutral row is as readable as the large ones."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(matrix, dtype=float)
    share = cm / np.clip(cm.sum(axis=1, keepdims=True), 1, None)
    fig, ax = plt.subplots(figsize=(4.2, 3.6), dpi=110)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            color = "white" if share[i, j] > 0.6 else "black"
            ax.text(
                j, i, f"{int(cm[i, j])}\n{share[i, j]:.0%}", ha="center", va="center", color=color, fontsize=8
            )
    ax.set_xticks(range(len(LABELS)), LABELS)
    ax.set_yticks(range(len(LABELS)), LABELS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    return save_figure(fig, path)
