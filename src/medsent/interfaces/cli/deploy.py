"""`medsent export` and `medsent serve`: deployment formats and the REST service."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from medsent.core.errors import ConfigError
from medsent.interfaces.cli.app import app
from medsent.interfaces.cli.report import megabytes


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="Run folder of a neural model.")],
    format_: Annotated[
        str, typer.Option("--format", help="onnx (inside the run) or hf (a Hugging Face folder).")
    ] = "onnx",
    out: Annotated[
        Path | None, typer.Option("--out", help="hf: folder to write (default: RUN_DIR-hf beside the run).")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an earlier export.")] = False,
    compact: Annotated[
        bool,
        typer.Option(
            "--compact",
            help="onnx: the network as trained, not the TextCNN's lookup tables (smaller file, slower).",
        ),
    ] = False,
    tables: Annotated[
        str | None,
        typer.Option(
            "--tables",
            help="onnx lookup graph: fp16 (default; half the file, probabilities within 1e-3) or fp32.",
        ),
    ] = None,
    quantize: Annotated[
        str | None,
        typer.Option(
            "--quantize",
            help="onnx of a transformer run: int8 weights (refused if it loses > 0.005 macro-F1 on --data).",
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option("--data", help="--quantize: labelled reviews (the run's columns) to check it on."),
    ] = None,
) -> None:
    """Export the network: ONNX for predict/serve, or a folder transformers loads."""
    from medsent.inference.export import export_run

    meta = export_run(
        run_dir, format_, out, overwrite, compact=compact, tables=tables, quantize=quantize, data=data
    )
    if meta.get("format") == "hf":
        typer.echo(
            f"exported {meta['path']} (AutoModelForSequenceClassification, trust_remote_code=True; "
            f"temperature {meta['temperature']:.3f} folded into the head); "
            f"max |p_hf - p_medsent| = {meta['max_abs_prob_diff']:.2e}"
        )
        return
    typer.echo(
        f"exported {Path(meta['path']) / meta['file']} "
        f"({meta['graph']} graph{' of ' + meta['tables'] + ' tables' if meta.get('tables') else ''}, "
        f"{megabytes(Path(meta['path']) / meta['file'])}, "
        f"opset {meta['opset']}, {meta['export_seconds']:.1f} s); "
        f"max |p_onnx - p_torch| = {meta['max_abs_prob_diff']:.2e}"
    )
    if meta.get("int8_check"):
        q = meta["int8_check"]
        typer.echo(
            f"int8 on {q['reviews']} reviews: macro-F1 {q['macro_f1_int8']:.4f} against "
            f"{q['macro_f1_float32']:.4f} in float32 ({q['macro_f1_change']:+.4f}), "
            f"{q['answers_changed']:.1%} of answers changed"
        )
    t = meta["batch64_ms_per_review"]
    rows = meta["onnx_max_rows"]
    route = "every batch" if rows >= 1 << 30 else f"batches of up to {rows} rows (PyTorch is faster above)"
    typer.echo(
        f"batch of 64: {t['onnxruntime']:.2f} ms/review onnxruntime, {t['native']:.2f} PyTorch; "
        f"onnxruntime will run {route}"
    )


@app.command()
def serve(
    run_dir: Annotated[Path, typer.Argument(help="Run folder to serve (any model, or an ensemble).")],
    host: Annotated[
        str, typer.Option("--host", help="Interface to bind; 0.0.0.0 exposes it to the network.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option("--workers", help="Worker processes (each loads the model).")] = 1,
    threads: Annotated[int | None, typer.Option("--threads", help="Torch threads per worker.")] = None,
    max_text_chars: Annotated[
        int, typer.Option("--max-text-chars", help="Longest text accepted (413 beyond).")
    ] = 20_000,
    max_batch: Annotated[
        int, typer.Option("--max-batch", help="Most texts per batch request (413 beyond).")
    ] = 256,
    max_queue: Annotated[
        int,
        typer.Option(
            "--max-queue", help="Most texts waiting for the model; beyond, 503 with Retry-After at once."
        ),
    ] = 512,
) -> None:
    """Serve predictions over HTTP: POST /v1/predict, /v1/predict/batch; GET /health, /v1/model."""
    from medsent.interfaces.serve import Limits
    from medsent.interfaces.serve import serve as run_server

    if workers < 1 or not 0 < port < 65536:
        raise ConfigError("--workers must be >= 1 and --port within 1-65535")
    if max_text_chars < 1 or max_batch < 1 or max_queue < 1:
        raise ConfigError("--max-text-chars, --max-batch and --max-queue must be positive")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s", stream=sys.stderr)
    run_server(
        run_dir,
        host,
        port,
        workers,
        Limits(max_text_chars=max_text_chars, max_batch=max_batch, max_queue=max_queue),
        threads,
    )
