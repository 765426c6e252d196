"""`medsent evaluate` and `medsent calibrate`: score a run, and fit what predict then applies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from medsent.interfaces.cli.app import app
from medsent.interfaces.cli.options import (
    NO_COLUMNS,
    DataColumns,
    data_options,
)


@app.command()
@data_options
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="Run folder.")],
    data: Annotated[Path, typer.Option("--data", help="Labelled data file to score.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Folder for metrics.json (with error analysis), sweep and confusion plots."
        ),
    ] = None,
    columns: DataColumns = NO_COLUMNS,
) -> None:
    """Score a run on a labelled file (the run's own cleaning and column mapping by default)."""
    from medsent.evaluation.metrics import metrics_markdown
    from medsent.evaluation.tiers import tiers_markdown
    from medsent.interfaces.api import evaluate as evaluate_run
    from medsent.interfaces.api import load

    model = load(run_dir)
    metrics = evaluate_run(
        model,
        data,
        **columns.api_kwargs(),
        out=out,
    )
    if as_json:
        typer.echo(json.dumps(metrics))
    else:
        typer.echo(metrics_markdown(metrics, f"{run_dir} on {data}"))
        typer.echo("\nConfidence tiers:\n\n" + tiers_markdown(metrics["tiers"], model.config.tiers))
        if "share_to_slow" in metrics:
            typer.echo(f"\ncascade: the slow run answered {metrics['share_to_slow']:.1%} of these reviews")


@app.command()
@data_options
def calibrate(
    run_dir: Annotated[Path, typer.Argument(help="Run folder to calibrate (it gains calibration.json).")],
    data: Annotated[Path, typer.Option("--data", help="Validation file (never the test set).")],
    objective: Annotated[
        str,
        typer.Option(
            "--objective",
            help="nll: temperature scaling; macro_f1: per-class decision offsets; all: both.",
        ),
    ] = "nll",
    force_offsets: Annotated[
        bool,
        typer.Option("--force-offsets", help="Keep decision offsets even where cross-fitting shows no gain."),
    ] = False,
    columns: DataColumns = NO_COLUMNS,
) -> None:
    """Fit temperature scaling and/or a macro-F1 decision rule on validation data; predict,
    evaluate, compare, ensemble and serve apply them from then on."""
    from medsent.interfaces.api import calibrate as calibrate_run

    result = calibrate_run(
        run_dir,
        data,
        objective=objective.lower(),
        **columns.api_kwargs(),
        force_offsets=force_offsets,
    )
    if (t := result["temperature"]) is not None:
        typer.echo(
            f"temperature {t['temperature']:.3f}: ECE {t['ece_before']:.4f} -> {t['ece_after']:.4f} "
            f"(2-fold cross-fitted: {t['ece_after_crossfit']:.4f}), "
            f"NLL {t['nll_before']:.4f} -> {t['nll_after']:.4f} (n={t['n']})"
        )
        if t.get("dropped_decision_offsets"):
            typer.echo(
                "decision offsets removed (fitted on the old temperature); refit with --objective macro_f1"
            )
    if (d := result["decision"]) is not None:
        offs = ", ".join(f"{k} {v:+.2f}" for k, v in d["offsets"].items())
        ins, cf = d["in_sample"], d["crossfit"]
        typer.echo(
            f"decision offsets ({offs}): macro-F1 "
            f"{ins['macro_f1_before']:.4f} -> {ins['macro_f1_after']:.4f} "
            f"in-sample; cross-fitted (fit on one half, scored on the other, {cf['halvings']} halvings): "
            f"{cf['macro_f1_before']:.4f} -> {cf['macro_f1_after']:.4f} "
            f"(gain {cf['macro_f1_gain']:+.4f} ± {cf['macro_f1_gain_sd']:.4f}; Neutral F1 "
            f"{cf['neutral_f1_before']:.3f} -> {cf['neutral_f1_after']:.3f})"
        )
        typer.echo(
            "offsets kept: predict/evaluate/serve apply them"
            if d["kept"]
            else "offsets NOT kept: the cross-fitted gain is below +0.002 or not consistent (--force-offsets)"
        )
    typer.echo(f"saved in {run_dir}")
