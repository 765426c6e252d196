"""`medsent data inspect|prepare`: look at a review file and write its cleaned table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medsent.interfaces.cli.app import data_app
from medsent.interfaces.cli.options import (
    NO_COLUMNS,
    DataColumns,
    data_config,
    data_options,
)


@data_app.command("inspect")
@data_options
def data_inspect(
    data: Annotated[Path, typer.Argument(help="CSV, TSV, Parquet, JSON or JSONL file.")],
    english_only: Annotated[bool, typer.Option(help="Drop reviews that do not look English.")] = False,
    out: Annotated[Path | None, typer.Option("--out", help="Folder for summary and plots.")] = None,
    columns: DataColumns = NO_COLUMNS,
) -> None:
    """Cleaning report, class balance, lengths and plots for one data file."""
    from medsent.core.config import CleanConfig
    from medsent.data.dataset import load_labeled
    from medsent.data.inspect import inspect_data, summary_markdown

    cfg = data_config(columns.layer())
    labeled = load_labeled(data, cfg, CleanConfig(english_only=english_only))
    target = out or Path("reports") / f"inspect-{data.stem}"
    summary, paths = inspect_data(labeled, target)
    typer.echo(summary_markdown(summary))
    typer.echo(f"saved: {', '.join(str(p) for p in paths)}")


@data_app.command("prepare")
@data_options
def data_prepare(
    data: Annotated[Path, typer.Argument(help="Raw data file.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Cleaned file (.csv, .parquet, .jsonl...).")],
    english_only: Annotated[bool, typer.Option(help="Drop reviews that do not look English.")] = False,
    negation: Annotated[bool, typer.Option(help="Add a negation-tagged text column.")] = False,
    columns: DataColumns = NO_COLUMNS,
) -> None:
    """Write the cleaned (text, label) table; prints the cleaning report."""
    from medsent.core.config import CleanConfig
    from medsent.core.labels import LABELS
    from medsent.data.dataset import load_labeled
    from medsent.data.io import write_table
    from medsent.data.negation import negation_tag

    cfg = data_config(columns.layer())
    labeled = load_labeled(data, cfg, CleanConfig(english_only=english_only))
    frame = labeled.frame.assign(label_name=[LABELS[i] for i in labeled.frame["label"]])
    if negation:
        frame["text_negation"] = frame["text"].map(negation_tag)
    write_table(frame, output)
    typer.echo(labeled.report.to_markdown())
    typer.echo(f"wrote {len(frame)} rows to {output}")
