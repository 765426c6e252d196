"""The `medsent` command line. Exit codes: 0 success, 2 bad input or usage, 1 unexpected failure.

Heavy libraries are imported inside commands so `medsent --help` and `predict` start quickly.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from medsent.errors import ConfigError, DataError, MedsentError

app = typer.Typer(
    help="medsent: train, evaluate and serve Negative/Neutral/Positive classifiers for drug reviews.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Inspect and prepare review data.", no_args_is_help=True)
app.add_typer(data_app, name="data")

log = logging.getLogger("medsent")

PresetOpt = Annotated[
    str | None, typer.Option("--preset", help="Data preset: webmd, drugscom or askapatient.")
]
TextColOpt = Annotated[str | None, typer.Option("--text-col", help="Column holding the review text.")]
LabelColOpt = Annotated[
    str | None, typer.Option("--label-col", help="Column holding labels (names or 0/1/2).")
]
RatingColOpt = Annotated[
    str | None, typer.Option("--rating-col", help="Column holding numeric ratings to map to labels.")
]
StrictOpt = Annotated[
    bool, typer.Option("--strict", help="Fail on bad ratings/labels/bytes instead of counting and dropping.")
]


def _setup_logging(verbose: bool = True) -> None:
    import warnings

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(message)s",
        stream=sys.stderr,
    )
    # Lightning logs through its own handler; keep one copy of each line and drop its adverts.
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).propagate = False
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")


def _data_layer(
    preset: str | None,
    text_col: str | None,
    label_col: str | None,
    rating_col: str | None,
    strict: bool,
) -> dict[str, Any]:
    from medsent.data.presets import data_layer

    return data_layer(preset, text_col, label_col, rating_col, strict)


def _parse_sets(items: list[str]) -> dict[str, Any]:
    from medsent.config import parse_sets

    return parse_sets(items)


def _data_config(layer: dict[str, Any]) -> Any:
    from medsent.config import build_config

    return build_config({"data": layer}).data


@data_app.command("inspect")
def data_inspect(
    data: Annotated[Path, typer.Argument(help="CSV, TSV, Parquet, JSON or JSONL file.")],
    preset: PresetOpt = None,
    text_col: TextColOpt = None,
    label_col: LabelColOpt = None,
    rating_col: RatingColOpt = None,
    strict: StrictOpt = False,
    english_only: Annotated[bool, typer.Option(help="Drop reviews that do not look English.")] = False,
    out: Annotated[Path | None, typer.Option("--out", help="Folder for summary and plots.")] = None,
) -> None:
    """Cleaning report, class balance, lengths and plots for one data file."""
    from medsent.config import CleanConfig
    from medsent.data.dataset import load_labeled
    from medsent.data.inspect import inspect_data, summary_markdown

    cfg = _data_config(_data_layer(preset, text_col, label_col, rating_col, strict))
    labeled = load_labeled(data, cfg, CleanConfig(english_only=english_only))
    target = out or Path("reports") / f"inspect-{data.stem}"
    summary, paths = inspect_data(labeled, target)
    typer.echo(summary_markdown(summary))
    typer.echo(f"saved: {', '.join(str(p) for p in paths)}")


@data_app.command("prepare")
def data_prepare(
    data: Annotated[Path, typer.Argument(help="Raw data file.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Cleaned file (.csv, .parquet, .jsonl...).")],
    preset: PresetOpt = None,
    text_col: TextColOpt = None,
    label_col: LabelColOpt = None,
    rating_col: RatingColOpt = None,
    strict: StrictOpt = False,
    english_only: Annotated[bool, typer.Option(help="Drop reviews that do not look English.")] = False,
    negation: Annotated[bool, typer.Option(help="Add a negation-tagged text column.")] = False,
) -> None:
    """Write the cleaned (text, label) table; prints the cleaning report."""
    from medsent.config import CleanConfig
    from medsent.data.dataset import load_labeled
    from medsent.data.io import write_table
    from medsent.data.negation import negation_tag
    from medsent.labels import LABELS

    cfg = _data_config(_data_layer(preset, text_col, label_col, rating_col, strict))
    labeled = load_labeled(data, cfg, CleanConfig(english_only=english_only))
    frame = labeled.frame.assign(label_name=[LABELS[i] for i in labeled.frame["label"]])
    if negation:
        frame["text_negation"] = frame["text"].map(negation_tag)
    write_table(frame, output)
    typer.echo(labeled.report.to_markdown())
    typer.echo(f"wrote {len(frame)} rows to {output}")


@app.command()
def train(
    model: Annotated[str, typer.Option("--model", help="Model name (see `medsent models`).")] = "svm",
    data: Annotated[Path | None, typer.Option("--data", help="Training data file.")] = None,
    val_data: Annotated[Path | None, typer.Option("--val-data", help="Validation file.")] = None,
    test_data: Annotated[Path | None, typer.Option("--test-data", help="Test file, scored once.")] = None,
    preset: PresetOpt = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML config file.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Run folder to create.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Random seed.")] = None,
    text_col: TextColOpt = None,
    label_col: LabelColOpt = None,
    rating_col: RatingColOpt = None,
    strict: StrictOpt = False,
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
) -> None:
    """Train one model and write a self-describing run folder."""
    from medsent.api import resume_training, run_training
    from medsent.training import train_config

    _setup_logging()
    if resume is not None:
        _print_result(resume_training(resume))
        return
    cli: dict[str, Any] = {}
    trainer_layer = {
        k: v
        for k, v in {
            "max_epochs": max_epochs,
            "batch_size": batch_size,
            "precision": precision,
            "accelerator": accelerator,
            "devices": devices,
            "num_nodes": num_nodes,
        }.items()
        if v is not None
    }
    if trainer_layer:
        cli["trainer"] = trainer_layer
    if lr is not None:
        cli["optim"] = {"lr": lr}
    if pretrained is not None:
        cli["transformer"] = {"pretrained": pretrained}
    data_layer = _data_layer(preset, text_col, label_col, rating_col, strict)
    if data_layer:
        cli["data"] = data_layer
    if seed is not None:
        cli["seed"] = seed
    split: dict[str, Any] = {}
    if val_frac is not None:
        split["val_frac"] = val_frac
    if test_frac is not None:
        split["test_frac"] = test_frac
    if split:
        cli["split"] = split
    if negation is not None:
        cli["text"] = {"negation": negation}
    if logger:
        names = [n.strip().lower() for item in logger for n in item.split(",") if n.strip()]
        cli["tracking"] = {"loggers": [] if names == ["none"] else names}
    targets: dict[str, Any] = {}
    if main_target is not None:
        targets["main"] = main_target.lower()
    for item in aux_target or []:
        name, sep, weight = item.partition("=")
        try:
            targets.setdefault("aux", {})[name.strip()] = float(weight) if sep else 1.0
        except ValueError:
            raise ConfigError(
                f"--aux-target expects NAME=WEIGHT (e.g. effectiveness=0.3), got '{item}'"
            ) from None
    if targets:
        cli["targets"] = targets
    cfg = train_config(
        model, preset_config=preset_config, config=config, layers=[cli], overrides=_parse_sets(set_ or [])
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
    _print_result(result)


def _megabytes(path: Path) -> str:
    return f"{path.stat().st_size / 1e6:.1f} MB"


def _print_result(result: Any) -> None:
    if not result.metrics:  # a DDP worker process: rank 0 reports
        return
    typer.echo(f"run: {result.run_dir}")
    typer.echo(f"fit: {result.fit_seconds:.1f} s")
    m = result.metrics
    if "epochs_run" in m:
        speed = m.get("train_samples_per_s")
        parts = [
            f"epochs run {m['epochs_run']}",
            f"best epoch {m['best_epoch']}",
            f"precision {m['precision']}",
            f"{speed:.0f} train samples/s" if speed else "",
            f"params {m['params_total']:,} ({m['params_trainable']:,} trainable)",
        ]
        if "vocab_size" in m:
            parts.append(f"vocab {m['vocab_size']:,} ({m['vocab_coverage']:.1%} token coverage)")
        typer.echo(", ".join(p for p in parts if p))
    for role in ("val", "test"):
        if role in result.metrics:
            m = result.metrics[role]
            per = " ".join(f"{k}={v['f1']:.3f}" for k, v in m["per_class"].items())
            typer.echo(
                f"{role}: macro-F1 {m['macro_f1']:.4f}  accuracy {m['accuracy']:.4f}  "
                f"kappa {m['kappa']:.4f}  "
                f"ECE {m['ece']:.4f}  F1 {per}  (n={m['n']})"
            )
    typer.echo(f"report: {result.run_dir / 'report.md'}")


@app.command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="Run folder.")],
    data: Annotated[Path, typer.Option("--data", help="Labelled data file to score.")],
    preset: PresetOpt = None,
    text_col: TextColOpt = None,
    label_col: LabelColOpt = None,
    rating_col: RatingColOpt = None,
    strict: StrictOpt = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Folder for metrics.json (with error analysis), sweep and confusion plots."
        ),
    ] = None,
) -> None:
    """Score a run on a labelled file (the run's own cleaning and column mapping by default)."""
    from medsent.api import evaluate as evaluate_run
    from medsent.api import load
    from medsent.evaluation.metrics import metrics_markdown
    from medsent.evaluation.tiers import tiers_markdown

    model = load(run_dir)
    metrics = evaluate_run(
        model,
        data,
        preset=preset,
        text_col=text_col,
        label_col=label_col,
        rating_col=rating_col,
        strict=strict,
        out=out,
    )
    if as_json:
        typer.echo(json.dumps(metrics))
    else:
        typer.echo(metrics_markdown(metrics, f"{run_dir} on {data}"))
        typer.echo("\nConfidence tiers:\n\n" + tiers_markdown(metrics["tiers"], model.config.tiers))
        if "share_to_slow" in metrics:
            typer.echo(f"\ncascade: the slow run answered {metrics['share_to_slow']:.1%} of these reviews")


@app.command()
def calibrate(
    run_dir: Annotated[Path, typer.Argument(help="Run folder to calibrate (it gains calibration.json).")],
    data: Annotated[Path, typer.Option("--data", help="Validation file (never the test set).")],
    objective: Annotated[
        str,
        typer.Option(
            "--objective",
            help="nll: temperature scaling; macro_f1: per-class decision offsets; all: both.",
        ),
    ] = "nll",
    preset: PresetOpt = None,
    text_col: TextColOpt = None,
    label_col: LabelColOpt = None,
    rating_col: RatingColOpt = None,
    strict: StrictOpt = False,
    force_offsets: Annotated[
        bool,
        typer.Option("--force-offsets", help="Keep decision offsets even where cross-fitting shows no gain."),
    ] = False,
) -> None:
    """Fit temperature scaling and/or a macro-F1 decision rule on validation data; predict,
    evaluate, compare, ensemble and serve apply them from then on."""
    from medsent.api import calibrate as calibrate_run

    result = calibrate_run(
        run_dir,
        data,
        objective=objective.lower(),
        preset=preset,
        text_col=text_col,
        label_col=label_col,
        rating_col=rating_col,
        strict=strict,
        force_offsets=force_offsets,
    )
    if (t := result["temperature"]) is not None:
        typer.echo(
            f"temperature {t['temperature']:.3f}: ECE {t['ece_before']:.4f} -> {t['ece_after']:.4f} "
            f"(2-fold cross-fitted: {t['ece_after_crossfit']:.4f}), "
            f"NLL {t['nll_before']:.4f} -> {t['nll_after']:.4f} (n={t['n']})"
        )
        if t.get("dropped_decision_offsets"):
            typer.echo(
                "decision offsets removed (fitted on the old temperature); refit with --objective macro_f1"
            )
    if (d := result["decision"]) is not None:
        offs = ", ".join(f"{k} {v:+.2f}" for k, v in d["offsets"].items())
        ins, cf = d["in_sample"], d["crossfit"]
        typer.echo(
            f"decision offsets ({offs}): macro-F1 "
            f"{ins['macro_f1_before']:.4f} -> {ins['macro_f1_after']:.4f} "
            f"in-sample; cross-fitted (fit on one half, scored on the other, {cf['halvings']} halvings): "
            f"{cf['macro_f1_before']:.4f} -> {cf['macro_f1_after']:.4f} "
            f"(gain {cf['macro_f1_gain']:+.4f} ± {cf['macro_f1_gain_sd']:.4f}; Neutral F1 "
            f"{cf['neutral_f1_before']:.3f} -> {cf['neutral_f1_after']:.3f})"
        )
        typer.echo(
            "offsets kept: predict/evaluate/serve apply them"
            if d["kept"]
            else "offsets NOT kept: the cross-fitted gain is below +0.002 or not consistent (--force-offsets)"
        )
    typer.echo(f"saved in {run_dir}")


def _load_for_run(predictor: Any, data: Path, layer: dict[str, Any]) -> Any:
    from medsent.data.dataset import load_labeled_for

    return load_labeled_for(predictor.config, data, layer)


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
    from medsent.predict import Predictor

    if text and input_ is not None:
        raise ConfigError("give either --text or --input FILE --output FILE, not both")
    if text:
        if any(not t.strip() for t in text):
            raise DataError("--text is empty")
        predictor = Predictor(run_dir)
        for row in predictor.predict(text):
            typer.echo(json.dumps(row))
        return
    if input_ is None or output is None:
        raise ConfigError("give --text TEXT, or --input FILE with --output FILE")
    from medsent.batch import predict_file, resolve_workers

    if engine == "dask":
        from medsent.distributed import predict_shards

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


@app.command()
def compare(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run folders (the first is the baseline).")],
    data: Annotated[Path, typer.Option("--data", help="Labelled held-out file every run is scored on.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the table, plots and report.html.")],
    preset: PresetOpt = None,
    text_col: TextColOpt = None,
    label_col: LabelColOpt = None,
    rating_col: RatingColOpt = None,
    strict: StrictOpt = False,
    baseline: Annotated[
        str | None, typer.Option("--baseline", help="Run (folder name) the deltas are measured against.")
    ] = None,
) -> None:
    """Score runs on one file: macro-F1, Neutral F1, kappa, speed, size, deltas; report.html."""
    from medsent.evaluation.compare import compare_runs

    layer = _data_layer(preset, text_col, label_col, rating_col, strict)
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
    from medsent.ensemble import build_ensemble

    explicit = None
    if weights is not None:
        try:
            explicit = [float(w) for w in weights.split(",")]
        except ValueError:
            raise ConfigError(f"--weights expects numbers separated by commas, got '{weights}'") from None
    fit_on = None
    if fit_weights is not None:
        from medsent.data.io import file_sha256
        from medsent.predict import Predictor

        labeled = _load_for_run(Predictor(run_dirs[0]), fit_weights, {})
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
    from medsent.ablate import applicable, run_ablation
    from medsent.config import build_config, load_yaml, model_preset_layer
    from medsent.models.registry import get_model_spec

    spec = get_model_spec(model)
    if spec.family == "sklearn":
        raise ConfigError("ablate switches off training techniques of neural models; the SVM has none")
    layers: list[dict[str, Any]] = [model_preset_layer(spec.name, preset_config), {"model": spec.name}]
    if config is not None:
        layers.append(load_yaml(config))
    cli: dict[str, Any] = {"trainer": {"progress_bar": False}}
    if max_epochs is not None:
        cli["trainer"]["max_epochs"] = max_epochs
    data_layer = _data_layer(preset, None, None, None, False)
    if data_layer:
        cli["data"] = data_layer
    layers += [cli, _parse_sets(set_ or [])]
    if list_only:
        for name, layer in applicable(build_config(*layers)).items():
            typer.echo(f"{name:18s} off = {layer}")
        return
    _setup_logging()
    chosen = [t.strip() for t in techniques.split(",") if t.strip()] if techniques else None
    if chosen == ["none"]:
        chosen = []
    extra: dict[str, dict[str, Any]] = {}
    for item in variant or []:
        name, sep, sets = item.partition(":")
        if not sep or not name.strip() or not sets.strip():
            raise ConfigError(f"--variant expects NAME:KEY=VALUE[,KEY=VALUE], got '{item}'")
        extra[name.strip()] = _parse_sets([s for s in sets.split(",") if s.strip()])
    if chosen == [] and not extra:
        raise ConfigError("--techniques none needs at least one --variant")
    from medsent.api import aux_sources

    run_ablation(
        layers, data, val_data, out, chosen, seeds, keep_runs, extra=extra, aux=aux_sources(aux_data or []),
        offsets=offsets,
    )  # fmt: skip
    typer.echo((out / "ablation.md").read_text(encoding="utf-8"))
    typer.echo(f"report: {out / 'report.html'}")


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
    from medsent.export import export_run

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
        f"{_megabytes(Path(meta['path']) / meta['file'])}, "
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
    from medsent.serve import Limits
    from medsent.serve import serve as run_server

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
    from medsent.cascade import build_cascade

    spec = build_cascade(
        fast, slow, data, out, tolerance, _data_layer(preset, None, None, None, False), overwrite
    )
    typer.echo(
        f"cascade saved to {out}: threshold {spec['threshold']:.3f}; on {data.name} the fast run answers "
        f"{spec['val_share_fast']:.1%} of reviews; macro-F1 cascade {spec['val_macro_f1_cascade']:.4f}, "
        f"slow {spec['val_macro_f1_slow']:.4f}, fast {spec['val_macro_f1_fast']:.4f}"
    )


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
    from medsent.distill import distill as run_distill

    _setup_logging()
    layer: dict[str, Any] = {}
    given = (
        ("temperature", temperature),
        ("alpha", alpha),
    )
    if any(v is not None for _, v in given):
        layer["distill"] = {k: v for k, v in given if v is not None}
    if max_epochs is not None:
        layer["trainer"] = {"max_epochs": max_epochs}
    if seed is not None:
        layer["seed"] = seed
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
        overrides=_parse_sets(set_ or []),
        layers=[layer],
        overwrite=overwrite,
        teacher_cache=teacher_cache,
    )
    _print_result(result)


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

    from medsent.config import PretrainConfig, deep_update, format_validation_error, load_yaml
    from medsent.neural.pretrain import pretrain as run_pretrain
    from medsent.neural.pretrain import resume_info

    _setup_logging()
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
        layer = deep_update(layer, _parse_sets(set_ or []))
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


@app.command()
def models() -> None:
    """List the registered models and the run kinds made from other runs."""
    from medsent.models.registry import RUN_KINDS

    for spec in RUN_KINDS.values():
        typer.echo(f"{spec.name:12s} {spec.family:12s} {spec.summary}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Run folder for the demo.")] = Path("runs/demo-svm"),
) -> None:
    """Train and evaluate the SVM on the embedded Drugs.com sample (no arguments needed)."""
    from medsent.config import build_config
    from medsent.data.demo import extract_demo_data
    from medsent.training import train_run

    _setup_logging()
    files = extract_demo_data(out.parent / ".demo-data")
    cfg = build_config({"model": "svm", "data": {"text_col": "review", "label_col": "rating"}})
    result = train_run(cfg, files["train"], out, test_path=files["test"], overwrite=True)
    m = result.metrics["test"]
    typer.echo(
        f"demo (Drugs.com sample, SVM): test macro-F1 {m['macro_f1']:.4f}  accuracy {m['accuracy']:.4f}  "
        f"kappa {m['kappa']:.4f}  (n={m['n']})"
    )
    typer.echo(f"report: {result.run_dir / 'report.md'}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line and exit 2; anything else exits 1 without a traceback."""
    try:
        app(args=argv, prog_name="medsent")
    except MedsentError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except MemoryError:
        typer.echo("error: out of memory; try a smaller input or batch size", err=True)
        sys.exit(1)
    except Exception as exc:
        typer.echo(f"unexpected error ({type(exc).__name__}): {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
