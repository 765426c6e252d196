"""What commands print about a finished run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer


def megabytes(path: Path) -> str:
    return f"{path.stat().st_size / 1e6:.1f} MB"


def print_result(result: Any) -> None:
    """What `train` and `distill` print: where the run is, how training went, its figures."""
    if not result.metrics:  # a DDP worker process: rank 0 reports
        return
    typer.echo(f"run: {result.run_dir}")
    typer.echo(f"fit: {result.fit_seconds:.1f} s")
    m = result.metrics
    if "epochs_run" in m:
        speed = m.get("train_samples_per_s")
        parts = [
            f"epochs run {m['epochs_run']}",
            f"best epoch {m['best_epoch']}",
            f"precision {m['precision']}",
            f"{speed:.0f} train samples/s" if speed else "",
            f"params {m['params_total']:,} ({m['params_trainable']:,} trainable)",
        ]
        if "vocab_size" in m:
            parts.append(f"vocab {m['vocab_size']:,} ({m['vocab_coverage']:.1%} token coverage)")
        typer.echo(", ".join(p for p in parts if p))
    for role in ("val", "test"):
        if role in result.metrics:
            m = result.metrics[role]
            per = " ".join(f"{k}={v['f1']:.3f}" for k, v in m["per_class"].items())
            typer.echo(
                f"{role}: macro-F1 {m['macro_f1']:.4f}  accuracy {m['accuracy']:.4f}  "
                f"kappa {m['kappa']:.4f}  "
                f"ECE {m['ece']:.4f}  F1 {per}  (n={m['n']})"
            )
    typer.echo(f"report: {result.run_dir / 'report.md'}")
