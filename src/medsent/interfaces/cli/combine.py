"""`medsent compare`, `ensemble` and `cascade`: several runs on one file, and runs made of runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medsent.core.errors import ConfigError
from medsent.interfaces.cli.app import app
from medsent.interfaces.cli.options import (
    NO_COLUMNS,
    DataColumns,
    PresetOpt,
    data_options,
    load_for_run,
)


@app.command()
@data_options
def compare(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run folders (the first is the baseline).")],
    data: Annotated[Path, typer.Option("--data", help="Labelled held-out file every run is scored on.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the table, plots and report.html.")],
    baseline: Annotated[
        str | None, typer.Option("--baseline", help="Run (folder name) the deltas are measured against.")
    ] = None,
    columns: DataColumns = NO_COLUMNS,
) -> None:
    """Score runs on one file: macro-F1, Neutral F1, kappa, speed, size, deltas; report.html."""
    from medsent.evaluation.compare import compare_runs

    layer = columns.layer()
    compare_runs(run_dirs, data, out, layer, baseline)
    typer.echo((out / "comparison.md").read_text(encoding="utf-8"))
    typer.echo(f"report: {out / 'report.html'}")


@app.command()
def ensemble(
    run_dirs: Annotated[list[Path], typer.Argument(help="Member run folders (two or more).")],
    out: Annotated[Path, typer.Option("--out", help="Run folder for the ensemble.")],
    method: Annotated[
        str, typer.Option("--method", help="soft (average probabilities) or hard (votes).")
    ] = "soft",
    fit_weights: Annotated[
        Path | None,
        typer.Option("--fit-weights", help="Validation file to fit member weights on (log-loss)."),
    ] = None,
    weights: Annotated[
        str | None, typer.Option("--weights", help="Explicit member weights, comma-separated.")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out folder.")] = False,
) -> None:
    """Combine runs into one run that predict, evaluate, calibrate and serve accept."""
    from medsent.training.combine import build_ensemble

    explicit = None
    if weights is not None:
        try:
            explicit = [float(w) for w in weights.split(",")]
        except ValueError:
            raise ConfigError(f"--weights expects numbers separated by commas, got '{weights}'") from None
    fit_on = None
    if fit_weights is not None:
        from medsent.core.runs import file_sha256
        from medsent.inference.predict import Predictor

        labeled = load_for_run(Predictor(run_dirs[0]), fit_weights, {})
        fit_on = (
            labeled.frame["text"].tolist(),
            labeled.frame["label"].to_numpy(),
            {"path": str(fit_weights), "sha256": file_sha256(fit_weights), "n": len(labeled.frame)},
        )
    spec = build_ensemble(run_dirs, out, method, explicit, fit_on, overwrite)
    typer.echo(f"ensemble ({spec['method']}) of {len(spec['members'])} runs saved to {out}")
    for member, w in zip(spec["members"], spec["weights"], strict=True):
        typer.echo(f"  {w:.3f}  {member}")
    if "val_macro_f1_fitted" in spec:
        typer.echo(
            f"validation macro-F1: equal weights {spec['val_macro_f1_equal']:.4f}, "
            f"fitted {spec['val_macro_f1_fitted']:.4f}"
        )


@app.command()
def cascade(
    fast: Annotated[Path, typer.Argument(help="Fast run (answers where it is confident).")],
    slow: Annotated[Path, typer.Argument(help="Slow run (answers the rest).")],
    data: Annotated[Path, typer.Option("--data", help="Validation file the threshold is fitted on.")],
    out: Annotated[Path, typer.Option("--out", help="Run folder for the cascade.")],
    tolerance: Annotated[
        float, typer.Option("--tolerance", help="Macro-F1 the cascade may lose against the slow run.")
    ] = 0.005,
    preset: PresetOpt = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out folder.")] = False,
) -> None:
    """Combine a fast and a slow run: the slow one only sees the reviews the fast one is unsure of."""
    from medsent.training.combine import build_cascade

    spec = build_cascade(fast, slow, data, out, tolerance, DataColumns(preset).layer(), overwrite)
    typer.echo(
        f"cascade saved to {out}: threshold {spec['threshold']:.3f}; on {data.name} the fast run answers "
        f"{spec['val_share_fast']:.1%} of reviews; macro-F1 cascade {spec['val_macro_f1_cascade']:.4f}, "
        f"slow {spec['val_macro_f1_slow']:.4f}, fast {spec['val_macro_f1_fast']:.4f}"
    )
