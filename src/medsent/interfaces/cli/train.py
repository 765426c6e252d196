"""`medsent train`: one model, one run folder; `--resume` continues a killed run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medsent.interfaces.cli.app import app, setup_logging
from medsent.interfaces.cli.options import (
    NO_COLUMNS,
    DataColumns,
    aux_targets,
    data_options,
    flag_layer,
    parse_sets,
)
from medsent.interfaces.cli.report import print_result


@app.command()
@data_options
def train(
    model: Annotated[str, typer.Option("--model", help="Model name (see `medsent models`).")] = "svm",
    data: Annotated[Path | None, typer.Option("--data", help="Training data file.")] = None,
    val_data: Annotated[Path | None, typer.Option("--val-data", help="Validation file.")] = None,
    test_data: Annotated[Path | None, typer.Option("--test-data", help="Test file, scored once.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML config file.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Run folder to create.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Random seed.")] = None,
    val_frac: Annotated[float | None, typer.Option(help="Validation share carved if no --val-data.")] = None,
    test_frac: Annotated[
        float | None, typer.Option(help="Test share carved if no --test-data (0: none).")
    ] = None,
    negation: Annotated[
        bool | None, typer.Option("--negation/--no-negation", help="Negation tagging (default: per model).")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override any config field, e.g. --set svm.C=0.5.")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing run folder.")] = False,
    preset_config: Annotated[
        str | None,
        typer.Option(
            "--preset-config", help="The study's configuration: v1, v2 or recommended (default v2)."
        ),
    ] = None,
    max_epochs: Annotated[int | None, typer.Option("--max-epochs", help="Neural: epoch limit.")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Neural: batch size.")] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Neural: learning rate.")] = None,
    precision: Annotated[
        str | None, typer.Option("--precision", help="Neural: 32, bf16, fp16 or auto (bf16 on a GPU).")
    ] = None,
    accelerator: Annotated[str | None, typer.Option("--accelerator", help="auto, cpu, gpu.")] = None,
    devices: Annotated[
        int | None, typer.Option("--devices", help="Neural: devices per node (DDP if > 1).")
    ] = None,
    num_nodes: Annotated[int | None, typer.Option("--num-nodes", help="Neural: machines (DDP).")] = None,
    pretrained: Annotated[
        str | None,
        typer.Option(
            "--pretrained", help="Transformer: model folder or hub id (default: the shipped MiniLM)."
        ),
    ] = None,
    resume: Annotated[
        Path | None, typer.Option("--resume", help="Continue a killed neural run from its last checkpoint.")
    ] = None,
    aux_data: Annotated[
        list[str] | None,
        typer.Option(
            "--aux-data",
            help="Extra training file whose rows may carry only auxiliary ratings (effectiveness, ...); "
            "FILE or FILE:PRESET; repeatable. Pair with --aux-target.",
        ),
    ] = None,
    aux_target: Annotated[
        list[str] | None,
        typer.Option(
            "--aux-target",
            help="Auxiliary head and its loss weight, NAME=WEIGHT (rating, effectiveness, ease_of_use).",
        ),
    ] = None,
    main_target: Annotated[
        str | None,
        typer.Option("--main-target", help="class (3-class loss) or ordinal (rating levels, ordinal loss)."),
    ] = None,
    logger: Annotated[
        list[str] | None,
        typer.Option(
            "--logger",
            help="Training logs: csv (default, in the run folder), tensorboard, mlflow, none; repeatable.",
        ),
    ] = None,
    columns: DataColumns = NO_COLUMNS,
) -> None:
    """Train one model and write a self-describing run folder."""
    from medsent.interfaces.api import resume_training, run_training
    from medsent.training.train import train_config

    setup_logging()
    if resume is not None:
        print_result(resume_training(resume))
        return
    cli = flag_layer(
        {
            "trainer.max_epochs": max_epochs,
            "trainer.batch_size": batch_size,
            "trainer.precision": precision,
            "trainer.accelerator": accelerator,
            "trainer.devices": devices,
            "trainer.num_nodes": num_nodes,
            "optim.lr": lr,
            "transformer.pretrained": pretrained,
            "seed": seed,
            "split.val_frac": val_frac,
            "split.test_frac": test_frac,
            "text.negation": negation,
            "targets.main": main_target.lower() if main_target is not None else None,
        }
    )
    if columns.layer():
        cli["data"] = columns.layer()
    if logger:
        names = [n.strip().lower() for item in logger for n in item.split(",") if n.strip()]
        cli["tracking"] = {"loggers": [] if names == ["none"] else names}
    if aux_target:
        cli.setdefault("targets", {})["aux"] = aux_targets(aux_target)
    cfg = train_config(
        model, preset_config=preset_config, config=config, layers=[cli], overrides=parse_sets(set_ or [])
    )
    result = run_training(
        cfg,
        data,
        val_data=val_data,
        test_data=test_data,
        out=out,
        overwrite=overwrite,
        aux_data=aux_data or [],
    )
    print_result(result)
