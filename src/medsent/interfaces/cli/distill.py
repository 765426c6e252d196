"""`medsent distill`: a fast student learns a teacher run's calibrated answers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medsent.interfaces.cli.app import app, setup_logging
from medsent.interfaces.cli.options import (
    PresetOpt,
    flag_layer,
    parse_sets,
)
from medsent.interfaces.cli.report import print_result


@app.command()
def distill(
    teacher: Annotated[Path, typer.Argument(help="Teacher run folder (any run, ensembles included).")],
    student: Annotated[
        str, typer.Option("--student", help="Model to train: textcnn, bilstm, or transformer (e.g. MiniLM).")
    ],
    data: Annotated[Path, typer.Option("--data", help="Labelled training file.")],
    val_data: Annotated[Path, typer.Option("--val-data", help="Validation file (early stopping).")],
    out: Annotated[Path, typer.Option("--out", help="Run folder for the student.")],
    unlabeled: Annotated[
        list[Path] | None,
        typer.Option(
            "--unlabeled", help="Review file(s) without labels for the teacher to label; repeatable."
        ),
    ] = None,
    test_data: Annotated[Path | None, typer.Option("--test-data", help="Test file, scored once.")] = None,
    preset: PresetOpt = None,
    preset_config: Annotated[
        str | None, typer.Option("--preset-config", help="The student's preset: v1, v2 (default).")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML config file.")] = None,
    temperature: Annotated[
        float | None, typer.Option("--temperature", help="Softening temperature T (distill.temperature).")
    ] = None,
    alpha: Annotated[
        float | None, typer.Option("--alpha", help="Weight of the gold-label loss (distill.alpha).")
    ] = None,
    max_epochs: Annotated[int | None, typer.Option("--max-epochs", help="Epoch limit.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Random seed.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override any config field.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out folder.")] = False,
    teacher_cache: Annotated[
        Path | None,
        typer.Option(
            "--teacher-cache",
            help="Folder that keeps the teacher's probabilities per review across students (seeds, "
            "T/alpha sweeps); default: the run's work folder, removed when the run is saved.",
        ),
    ] = None,
) -> None:
    """Train a fast model on a teacher run's calibrated probabilities (knowledge distillation)."""
    from medsent.training.distill import distill as run_distill

    setup_logging()
    layer = flag_layer(
        {
            "distill.temperature": temperature,
            "distill.alpha": alpha,
            "trainer.max_epochs": max_epochs,
            "seed": seed,
        }
    )
    result = run_distill(
        teacher,
        student,
        data,
        val_data,
        out,
        unlabeled=unlabeled or [],
        test_data=test_data,
        preset=preset,
        preset_config=preset_config,
        config=config,
        overrides=parse_sets(set_ or []),
        layers=[layer],
        overwrite=overwrite,
        teacher_cache=teacher_cache,
    )
    print_result(result)
