"""`medsent data inspect`: what a data file holds before anyone trains on it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medsent.core.labels import LABELS
from medsent.core.runs import write_json
from medsent.data.clean import word_count
from medsent.data.dataset import LabeledData


def summarize(data: LabeledData) -> dict[str, Any]:
    counts = data.class_counts()
    total = sum(counts.values())
    present = [c for c in counts.values() if c > 0]
    lengths = data.frame["text"].map(word_count).to_numpy()
    pct = [5, 25, 50, 75, 95, 99]
    summary: dict[str, Any] = {
        "source": data.source,
        "cleaning": data.report.to_dict(),
        "class_counts": counts,
        "class_share": {k: (v / total if total else 0.0) for k, v in counts.items()},
        "imbalance_ratio": (max(present) / min(present)) if present else None,
        "length_words": {
            "mean": float(lengths.mean()),
            **{f"p{p}": float(v) for p, v in zip(pct, np.percentile(lengths, pct), strict=True)},
            "max": int(lengths.max()),
        },
    }
    if "source" in data.frame.columns:
        summary["per_source"] = {str(k): int(v) for k, v in data.frame["source"].value_counts().items()}
    return summary


def summary_markdown(summary: dict[str, Any]) -> str:
    lines = [f"# Data inspection: {summary['source']['path']}", "", "## Cleaning", ""]
    lines.append("| step | rows in | rows out | dropped | changed |")
    lines.append("|---|---:|---:|---:|---:|")
    for s in summary["cleaning"]["steps"]:
        lines.append(f"| {s['step']} | {s['rows_in']} | {s['rows_out']} | {s['dropped']} | {s['changed']} |")
    for note in summary["cleaning"]["notes"]:
        lines.append(f"\n- {note}")
    lines += ["", "## Classes", "", "| class | rows | share |", "|---|---:|---:|"]
    for name in LABELS:
        lines.append(f"| {name} | {summary['class_counts'][name]} | {summary['class_share'][name]:.1%} |")
    ratio = summary["imbalance_ratio"]
    lines += ["", f"Imbalance ratio (largest / smallest class): {ratio:.2f}" if ratio else "", ""]
    lengths = summary["length_words"]
    lines += ["## Length (words)", "", "| " + " | ".join(lengths) + " |", "|" + "---:|" * len(lengths)]
    lines.append("| " + " | ".join(f"{v:.0f}" for v in lengths.values()) + " |")
    if "per_source" in summary:
        lines += ["", "## Rows per source", "", "| source | rows |", "|---|---:|"]
        lines += [f"| {k} | {v} |" for k, v in summary["per_source"].items()]
    return "\n".join(lines) + "\n"


def save_plots(data: LabeledData, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    counts = data.class_counts()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    bars = ax.bar(list(counts), list(counts.values()), color=["#c0392b", "#7f8c8d", "#27ae60"])
    ax.bar_label(bars)
    ax.set_title("Class distribution")
    ax.set_ylabel("reviews")
    fig.tight_layout()
    paths.append(out / "class_distribution.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

    lengths = data.frame["text"].map(word_count).to_numpy()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(np.clip(lengths, 0, np.percentile(lengths, 99)), bins=50, color="#2c3e50")
    ax.set_title("Review length (words, clipped at p99)")
    ax.set_xlabel("words")
    ax.set_ylabel("reviews")
    fig.tight_layout()
    paths.append(out / "length_histogram.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    return paths


def inspect_data(data: LabeledData, out: Path) -> tuple[dict[str, Any], list[Path]]:
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(data)
    write_json(out / "summary.json", summary)
    (out / "summary.md").write_text(summary_markdown(summary), encoding="utf-8")
    return summary, [out / "summary.json", out / "summary.md", *save_plots(data, out)]
