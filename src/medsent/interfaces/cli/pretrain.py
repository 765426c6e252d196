"""`medsent pretrain`: domain-adaptive masked-LM training of an encoder on review text."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from medsent.core.errors import ConfigError
from medsent.interfaces.cli.app import app, setup_logging
from medsent.interfaces.cli.options import (
    parse_sets,
)


@app.command()
def pretrain(
    data: Annotated[
        list[Path] | None, typer.Option("--data", help="Review file(s) to read (repeatable); labels unused.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Encoder folder to write (Hugging Face format).")
    ] = None,
    held_out: Annotated[
        list[Path] | None,
        typer.Option(
            "--held-out",
            help="Validation/test file(s): refused as --data, and their reviews removed from the corpus.",
        ),
    ] = None,
    pretrained: Annotated[
        str | None,
        typer.Option("--pretrained", help="Encoder to continue: minilm, mpnet, a folder, a hub id."),
    ] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Passes over the corpus.")] = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", help="Stop after this many steps.")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Reviews per step.")] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Peak learning rate.")] = None,
    precision: Annotated[str | None, typer.Option("--precision", help="32, bf16, fp16 or auto.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML with pretrain fields.")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a field, e.g. --set accumulate=4.")
    ] = None,
    resume: Annotated[
        Path | None, typer.Option("--resume", help="Continue a killed pretraining run (its --out folder).")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out folder.")] = False,
) -> None:
    """Domain-adaptive pretraining: continue the encoder's masked-LM training on review text."""
    from pydantic import ValidationError

    from medsent.core.config import PretrainConfig, deep_update, format_validation_error, load_yaml
    from medsent.training.pretrain import pretrain as run_pretrain
    from medsent.training.pretrain import resume_info

    setup_logging()
    if resume is not None:
        info = resume_info(resume)
        cfg = PretrainConfig.model_validate(info["config"])
        files, held, target = [Path(p) for p in info["files"]], [Path(p) for p in info["held_out"]], resume
    else:
        if not data or out is None:
            raise ConfigError("give --data FILE (repeatable) and --out FOLDER, or --resume FOLDER")
        layer: dict[str, Any] = load_yaml(config) if config is not None else {}
        flags = {"pretrained": pretrained, "epochs": epochs, "max_steps": max_steps, "batch_size": batch_size,
                 "lr": lr, "precision": precision}  # fmt: skip
        layer = deep_update(layer, {k: v for k, v in flags.items() if v is not None})
        layer = deep_update(layer, parse_sets(set_ or []))
        try:
            cfg = PretrainConfig.model_validate(layer)
        except ValidationError as exc:
            raise ConfigError(f"invalid pretrain config: {format_validation_error(exc)}") from None
        files, held, target = list(data), list(held_out or []), out
    summary = run_pretrain(files, target, cfg, held, resume=resume is not None, overwrite=overwrite)
    last = summary["history"][-1] if summary["history"] else {}
    typer.echo(
        f"pretrained {cfg.pretrained} on {summary['train_reviews']:,} reviews: {summary['steps']} steps, "
        f"{summary['seconds']:.0f} s ({summary['reviews_per_s']:.1f} reviews/s)"
        + (
            f", held-out MLM loss {last['val_mlm_loss']:.3f} (perplexity {last['val_perplexity']:.1f})"
            if last
            else ""
        )
    )
    typer.echo(f"encoder: {target} (medsent train --model transformer --pretrained {target})")
