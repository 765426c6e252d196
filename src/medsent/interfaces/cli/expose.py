"""`medsent expose`: a CheckList-style robustness report for a run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medsent.core.errors import ConfigError
from medsent.interfaces.cli.app import app
from medsent.interfaces.cli.options import DataColumns, data_options


@app.command()
@data_options
def expose(
    run_dir: Annotated[Path, typer.Argument(help="Run folder.")],
    columns: DataColumns,
    data: Annotated[Path, typer.Option("--data", help="Labelled reviews to perturb (e.g. validation).")],
    out: Annotated[Path | None, typer.Option("--out", help="Folder for robustness.json and .md.")] = None,
    sample: Annotated[int, typer.Option("--sample", help="Reviews drawn from --data (seeded).")] = 500,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the sample and every perturbation.")] = 0,
    typo_rate: Annotated[float, typer.Option("--typo-rate", help="Share of words given a typo.")] = 0.1,
) -> None:
    """Invariance (typos, casing, punctuation, whitespace, drug names), directional clauses,
    negation pairs and out-of-distribution inputs: failure rates with examples."""
    import numpy as np

    from medsent.core.runs import write_json
    from medsent.evaluation.expose import expose as run_tests
    from medsent.evaluation.expose import markdown
    from medsent.inference.predict import Predictor
    from medsent.interfaces.cli.options import load_for_run

    if sample < 1:
        raise ConfigError("--sample must be positive")
    if not 0 < typo_rate <= 1:
        raise ConfigError("--typo-rate must be within (0, 1]")
    if out is not None and out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder")
    predictor = Predictor(run_dir)
    frame = load_for_run(predictor, data, columns.layer()).frame
    pick = np.sort(np.random.default_rng(seed).permutation(len(frame))[:sample])
    frame = frame.iloc[pick].reset_index(drop=True)
    drugs = frame["drug"].dropna().astype(str).unique().tolist() if "drug" in frame.columns else []
    report = run_tests(predictor, frame["text"].tolist(), frame["label"].to_numpy(), drugs, seed, typo_rate)
    report = {"run": str(run_dir), "data": str(data), **report}
    text = markdown(report, f"Robustness of {predictor.model_name} ({run_dir.name})")
    for line in text.splitlines()[4 : 6 + len(report["tests"])]:
        typer.echo(line)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "robustness.json", report)
        md = out / "robustness.md"
        tmp = md.with_name(f".{md.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(md)
        typer.echo(f"wrote {out / 'robustness.json'} and {md}")
