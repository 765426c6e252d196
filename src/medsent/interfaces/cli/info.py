"""`medsent models` and `medsent demo`: what can be trained, and a first run with no arguments."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medsent.interfaces.cli.app import app, setup_logging


@app.command()
def models() -> None:
    """List the registered models and the run kinds made from other runs."""
    from medsent.models.registry import RUN_KINDS

    for spec in RUN_KINDS.values():
        typer.echo(f"{spec.name:12s} {spec.family:12s} {spec.summary}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Run folder for the demo.")] = Path("runs/demo-svm"),
) -> None:
    """Train and evaluate the SVM on the embedded Drugs.com sample (no arguments needed)."""
    from medsent.core.config import build_config
    from medsent.data.demo import extract_demo_data
    from medsent.training.train import train_run

    setup_logging()
    files = extract_demo_data(out.parent / ".demo-data")
    cfg = build_config({"model": "svm", "data": {"text_col": "review", "label_col": "rating"}})
    result = train_run(cfg, files["train"], out, test_path=files["test"], overwrite=True)
    m = result.metrics["test"]
    typer.echo(
        f"demo (Drugs.com sample, SVM): test macro-F1 {m['macro_f1']:.4f}  accuracy {m['accuracy']:.4f}  "
        f"kappa {m['kappa']:.4f}  (n={m['n']})"
    )
    typer.echo(f"report: {result.run_dir / 'report.md'}")
