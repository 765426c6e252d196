"""`medsent explain`: which words drove each answer, and how faithful each method is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from medsent.core.errors import ConfigError, DataError
from medsent.interfaces.cli.app import app
from medsent.interfaces.cli.options import DataColumns, data_options


@app.command()
@data_options
def explain(
    run_dir: Annotated[Path, typer.Argument(help="Run folder.")],
    columns: DataColumns,
    text: Annotated[list[str] | None, typer.Option("--text", help="Review text (repeatable).")] = None,
    input_: Annotated[Path | None, typer.Option("--input", help="File of reviews to explain.")] = None,
    output: Annotated[Path | None, typer.Option("--output", help="Where to write the results.")] = None,
    method: Annotated[
        list[str] | None,
        typer.Option("--method", help="linear, integrated_gradients or occlusion (default: the run's own)."),
    ] = None,
    target: Annotated[
        str | None, typer.Option("--target", help="Explain this class instead of the predicted one.")
    ] = None,
    data: Annotated[
        Path | None, typer.Option("--data", help="Labelled file for --faithfulness (e.g. validation).")
    ] = None,
    faithfulness: Annotated[
        bool,
        typer.Option("--faithfulness", help="ERASER faithfulness against random words."),
    ] = False,
    sample: Annotated[int, typer.Option("--sample", help="Reviews drawn from --data.")] = 200,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the sample and of the random words.")] = 0,
) -> None:
    """Word-level attributions toward the predicted class, for texts or a file; or, with --data
    --faithfulness, how much probability each method's top words carry against random words."""
    from medsent.evaluation.explain import explain as explain_texts
    from medsent.evaluation.explain import fitting_methods, pick_method
    from medsent.inference.predict import Predictor

    sources = sum(x is not None and x != [] for x in (text, input_, data))
    if sources != 1:
        raise ConfigError(
            "give one of --text TEXT, --input FILE --output FILE, or --data FILE --faithfulness"
        )
    if faithfulness != (data is not None):
        raise ConfigError("--faithfulness goes with --data FILE (a labelled file), and --data with it")
    if method and len(method) > 1 and not faithfulness:
        raise ConfigError("one --method at a time, except with --faithfulness")
    predictor = Predictor(run_dir)
    for name in method or []:
        pick_method(predictor, name)  # an unknown or unfitting method fails before any work
    if data is not None:
        _faithfulness(
            predictor, data, columns, method or fitting_methods(predictor.kind.family), sample, seed, output
        )
        return
    chosen = method[0] if method else None
    if text:
        from medsent.data.clean import is_blank

        if any(is_blank(t) for t in text):
            raise DataError("--text is empty")
        for row in explain_texts(predictor, text, chosen, target):
            typer.echo(json.dumps(row))
        return
    if output is None:
        raise ConfigError("--input needs --output FILE (JSON lines)")
    from medsent.data.io import read_table
    from medsent.inference.batch import text_column

    frame = read_table(input_).frame  # type: ignore[arg-type]
    col = text_column(frame, columns.text_col, predictor.config.data.text_col)
    rows = explain_texts(predictor, frame[col].fillna("").astype(str).tolist(), chosen, target)
    _write_atomic(output, "".join(json.dumps({"row": i, **r}) + "\n" for i, r in enumerate(rows)))
    typer.echo(f"wrote {len(rows)} explanations ({rows[0]['method'] if rows else chosen}) to {output}")


def _faithfulness(
    predictor: Any,
    data: Path,
    columns: DataColumns,
    methods: list[str],
    sample: int,
    seed: int,
    output: Path | None,
) -> None:
    import numpy as np

    from medsent.evaluation.explain.faithfulness import faithfulness
    from medsent.interfaces.cli.options import load_for_run

    if sample < 1:
        raise ConfigError("--sample must be positive")
    texts = load_for_run(predictor, data, columns.layer()).frame["text"].tolist()
    pick = np.random.default_rng(seed).permutation(len(texts))[:sample]
    chosen = [texts[i] for i in sorted(pick)]
    results = [faithfulness(predictor, chosen, m, seed) for m in methods]
    heads = ("comp@20%", "random", "ratio", "suff@20%", "random", "p50 s")
    typer.echo(f"{'method':22s} " + " ".join(f"{h:>9s}" for h in heads))
    for r in results:
        row = next(x for x in r["by_share"] if x["share"] == 0.2)
        cells = (
            row["comprehensiveness_top"],
            row["comprehensiveness_random"],
            r["ratio_at_20"],
            row["sufficiency_top"],
            row["sufficiency_random"],
            r["seconds_p50"],
        )
        typer.echo(f"{r['method']:22s} " + " ".join(f"{c:9.3f}" for c in cells))
    if output is not None:
        _write_atomic(output, json.dumps({"data": str(data), "results": results}, indent=2) + "\n")
        typer.echo(f"wrote {output}")


def _write_atomic(path: Path, content: str) -> None:
    """All or nothing: a killed run leaves no half-written file behind."""
    import os

    if not path.parent.is_dir():
        raise DataError(f"output folder does not exist: {path.parent}")
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(content, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
