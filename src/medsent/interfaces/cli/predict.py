"""`medsent predict`: one review, or a file in chunks, worker processes or Dask shards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from medsent.core.errors import ConfigError, DataError
from medsent.interfaces.cli.app import app
from medsent.interfaces.cli.options import TextColOpt


@app.command()
def predict(
    run_dir: Annotated[Path, typer.Argument(help="Run folder.")],
    text: Annotated[list[str] | None, typer.Option("--text", help="Review text (repeatable).")] = None,
    input_: Annotated[Path | None, typer.Option("--input", help="File of reviews to score.")] = None,
    output: Annotated[Path | None, typer.Option("--output", help="Where to write predictions.")] = None,
    text_col: TextColOpt = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue a killed --input job from its last complete chunk.")
    ] = False,
    workers: Annotated[
        str, typer.Option("--workers", help="Worker processes for --input: a number or auto (one per core).")
    ] = "auto",
    engine: Annotated[
        str, typer.Option("--engine", help="local (this machine) or dask (Parquet shards on a Dask cluster).")
    ] = "local",
    scheduler: Annotated[
        str | None, typer.Option("--scheduler", help="dask: scheduler address (default: a local cluster).")
    ] = None,
    chunk_rows: Annotated[
        int, typer.Option("--chunk-rows", help="Rows per chunk (and per resumable part) for --input.")
    ] = 10_000,
) -> None:
    """Predict labels and probabilities for texts, a whole file, or Parquet shards on a cluster."""
    from medsent.inference.predict import Predictor

    if text and input_ is not None:
        raise ConfigError("give either --text or --input FILE --output FILE, not both")
    if text:
        from medsent.data.clean import is_blank

        if any(is_blank(t) for t in text):
            raise DataError("--text is empty")
        predictor = Predictor(run_dir)
        for row in predictor.predict(text):
            typer.echo(json.dumps(row))
        return
    if input_ is None or output is None:
        raise ConfigError("give --text TEXT, or --input FILE with --output FILE")
    from medsent.inference.batch import predict_file, resolve_workers

    if engine == "dask":
        from medsent.inference.distributed import predict_shards

        summary = predict_shards(run_dir, str(input_), output, text_col, scheduler, resolve_workers(workers))
        typer.echo(
            f"wrote {summary['rows']} predictions in {summary['shards']} part(s) to {output} "
            f"({summary['skipped']} already done)"
        )
        return
    if engine != "local":
        raise ConfigError(f"unknown engine '{engine}'; known: local, dask")
    predictor = Predictor(run_dir)
    if chunk_rows < 1:
        raise ConfigError("--chunk-rows must be positive")
    count = predict_file(
        predictor,
        input_,
        output,
        text_col,
        resume=resume,
        workers=resolve_workers(workers),
        chunk_rows=chunk_rows,
    )
    typer.echo(f"wrote {count} predictions to {output}")
