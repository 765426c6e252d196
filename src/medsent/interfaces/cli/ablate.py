"""`medsent ablate`: a preset against itself with one technique off (or one lever on), over seeds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from medsent.core.errors import ConfigError
from medsent.interfaces.cli.app import app, setup_logging
from medsent.interfaces.cli.options import (
    DataColumns,
    PresetOpt,
    parse_sets,
)


@app.command()
def ablate(
    model: Annotated[str, typer.Option("--model", help="Neural model whose preset is ablated.")],
    data: Annotated[Path, typer.Option("--data", help="Training file.")],
    val_data: Annotated[Path, typer.Option("--val-data", help="Validation file every variant is scored on.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for results, table and report.html.")],
    techniques: Annotated[
        str | None,
        typer.Option(
            "--techniques", help="Comma-separated techniques to switch off (default: all the preset uses)."
        ),
    ] = None,
    seeds: Annotated[int, typer.Option("--seeds", help="Seeds per variant.")] = 3,
    preset_config: Annotated[
        str | None, typer.Option("--preset-config", help="v1, v2 or recommended (default v2).")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="YAML config layered on the preset.")
    ] = None,
    preset: PresetOpt = None,
    max_epochs: Annotated[
        int | None, typer.Option("--max-epochs", help="Epoch limit for every variant.")
    ] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override any config field.")] = None,
    keep_runs: Annotated[bool, typer.Option("--keep-runs", help="Keep every variant's run folder.")] = False,
    list_only: Annotated[
        bool, typer.Option("--list", help="Only list the techniques this preset can switch off.")
    ] = False,
    variant: Annotated[
        list[str] | None,
        typer.Option(
            "--variant",
            help="A lever switched on, NAME:KEY=VALUE[,KEY=VALUE] (e.g. ordinal:targets.main=ordinal); "
            "repeatable. With --techniques none only these are compared with the preset.",
        ),
    ] = None,
    aux_data: Annotated[
        list[str] | None,
        typer.Option("--aux-data", help="Auxiliary training file (FILE or FILE:PRESET) for every variant."),
    ] = None,
    offsets: Annotated[
        bool,
        typer.Option(
            "--offsets",
            help="Also score each variant with the macro-F1 decision rule, cross-fitted on validation.",
        ),
    ] = False,
) -> None:
    """Switch each technique of a preset off in turn (or levers on), over seeds: the impact table."""
    from medsent.core.config import build_config, load_yaml, model_preset_layer
    from medsent.models.registry import get_model_spec
    from medsent.training.ablate import applicable, run_ablation

    spec = get_model_spec(model)
    if spec.family == "sklearn":
        raise ConfigError("ablate switches off training techniques of neural models; the SVM has none")
    layers: list[dict[str, Any]] = [model_preset_layer(spec.name, preset_config), {"model": spec.name}]
    if config is not None:
        layers.append(load_yaml(config))
    cli: dict[str, Any] = {"trainer": {"progress_bar": False}}
    if max_epochs is not None:
        cli["trainer"]["max_epochs"] = max_epochs
    data_layer = DataColumns(preset).layer()
    if data_layer:
        cli["data"] = data_layer
    layers += [cli, parse_sets(set_ or [])]
    if list_only:
        for name, layer in applicable(build_config(*layers)).items():
            typer.echo(f"{name:18s} off = {layer}")
        return
    setup_logging()
    chosen = [t.strip() for t in techniques.split(",") if t.strip()] if techniques else None
    if chosen == ["none"]:
        chosen = []
    extra: dict[str, dict[str, Any]] = {}
    for item in variant or []:
        name, sep, sets = item.partition(":")
        if not sep or not name.strip() or not sets.strip():
            raise ConfigError(f"--variant expects NAME:KEY=VALUE[,KEY=VALUE], got '{item}'")
        extra[name.strip()] = parse_sets([s for s in sets.split(",") if s.strip()])
    if chosen == [] and not extra:
        raise ConfigError("--techniques none needs at least one --variant")
    from medsent.interfaces.api import aux_sources

    run_ablation(
        layers, data, val_data, out, chosen, seeds, keep_runs, extra=extra, aux=aux_sources(aux_data or []),
        offsets=offsets,
    )  # fmt: skip
    typer.echo((out / "ablation.md").read_text(encoding="utf-8"))
    typer.echo(f"report: {out / 'report.html'}")
