"""Confidence-tiered routing, the study's deployment plan: confident predictions go straight through,
middling ones to a quick review, the rest to manual labelling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medsent.core.config import TierConfig
from medsent.inference.decisions import TIERS, decision_confidence, tier_of


def tier_table(
    y: np.ndarray, proba: np.ndarray, cfg: TierConfig, offsets: np.ndarray | None = None
) -> dict[str, dict[str, Any]]:
    """Coverage (share of reviews) and accuracy per tier."""
    pred, conf = decision_confidence(proba, offsets)
    correct = pred == np.asarray(y)
    tiers = np.array([tier_of(float(c), cfg) for c in conf])
    table = {}
    for name in TIERS:
        mask = tiers == name
        table[name] = {
            "n": int(mask.sum()),
            "coverage": float(mask.mean()) if len(y) else 0.0,
            "accuracy": float(correct[mask].mean()) if mask.any() else None,
        }
    return table


def threshold_sweep(
    y: np.ndarray, proba: np.ndarray, steps: int = 41, offsets: np.ndarray | None = None
) -> list[dict[str, Any]]:
    """Accuracy of the reviews kept automatically, and their share, as the threshold rises."""
    pred, conf = decision_confidence(proba, offsets)
    correct = pred == np.asarray(y)
    rows = []
    for t in np.linspace(1 / 3, 1.0, steps):
        keep = conf >= t
        rows.append(
            {
                "threshold": float(t),
                "coverage": float(keep.mean()),
                "accuracy": float(correct[keep].mean()) if keep.any() else None,
            }
        )
    return rows


def tiers_markdown(table: dict[str, dict[str, Any]], cfg: TierConfig) -> str:
    bounds = {
        "auto": f">= {cfg.auto:.2f}",
        "review": f"{cfg.review:.2f}-{cfg.auto:.2f}",
        "manual": f"< {cfg.review:.2f}",
    }
    lines = ["| tier | confidence | reviews | coverage | accuracy |", "|---|---|---:|---:|---:|"]
    for name, row in table.items():
        acc = "n/a" if row["accuracy"] is None else f"{row['accuracy']:.1%}"
        lines.append(f"| {name} | {bounds[name]} | {row['n']} | {row['coverage']:.1%} | {acc} |")
    return "\n".join(lines)


def sweep_plot(rows: list[dict[str, Any]] | dict[str, list[dict[str, Any]]], path: Path) -> Path:
    """Coverage against accuracy as the auto threshold moves; several named curves share one axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6))
    curves = rows if isinstance(rows, dict) else {"": rows}
    for name, curve in curves.items():
        kept = [r for r in curve if r["accuracy"] is not None]
        ax.plot([r["coverage"] for r in kept], [r["accuracy"] for r in kept], marker=".", label=name or None)
    if len(curves) > 1:
        ax.legend(fontsize=7)
    ax.set_xlabel("coverage (share routed automatically)")
    ax.set_ylabel("accuracy of those")
    ax.set_title("Confidence threshold sweep")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def summary(y: np.ndarray, proba: np.ndarray, cfg: TierConfig) -> dict[str, Any]:
    return {
        "thresholds": cfg.model_dump(),
        "tiers": tier_table(y, proba, cfg),
        "sweep": threshold_sweep(y, proba),
    }
