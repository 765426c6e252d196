"""The Python API: what the CLI does, as functions for notebooks and pipelines.

``medsent.load(run)`` gives a :class:`Model` with ``predict`` / ``predict_proba``; ``medsent.train``
and ``medsent.evaluate`` run the same code as ``medsent train`` / ``medsent evaluate`` (the CLI is a
thin adapter over these functions). Errors are :class:`medsent.core.errors.MedsentError` subclasses with
a one-line message. Heavy libraries load on first use, so ``import medsent`` stays fast.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from medsent.core.config import RunConfig
    from medsent.inference.predict import Predictor
    from medsent.training.train import TrainResult

PathLike = str | Path
Overrides = Mapping[str, Any] | Sequence[str] | None


class Model:
    """A trained run, loaded once: ``predict`` gives the records ``medsent predict`` prints.

    Blank or non-text entries get no label (``prediction`` None, tier ``manual``) and a NaN row of
    probabilities, as in ``medsent predict --input``; they are never a confident guess.
    """

    def __init__(self, predictor: Predictor) -> None:
        self._predictor = predictor

    @property
    def run_dir(self) -> Path:
        return self._predictor.run_dir

    @property
    def labels(self) -> list[str]:
        return list(self._predictor.labels)

    @property
    def config(self) -> RunConfig:
        return self._predictor.config

    @property
    def kind(self) -> str:
        return self._predictor.model_name

    @property
    def backend(self) -> str:
        return self._predictor.backend

    @property
    def metrics(self) -> dict[str, Any]:
        """The figures stored in the run (validation, test, training summary)."""
        return dict(self._predictor.run.metrics)

    def __repr__(self) -> str:
        return f"medsent.Model({str(self.run_dir)!r}, kind={self.kind!r}, backend={self.backend!r})"

    def predict_proba(self, texts: str | Sequence[Any], calibrated: bool = True) -> np.ndarray:
        """rows x [Negative, Neutral, Positive]; calibrated when the run was (``medsent calibrate``)."""
        import numpy as np

        items, blank = _texts(texts)
        proba = np.full((len(items), len(self.labels)), np.nan)
        keep = [i for i, b in enumerate(blank) if not b]
        if keep:
            proba[keep] = self._predictor.predict_proba([items[i] for i in keep], calibrated=calibrated)
        return proba

    def predict(self, texts: str | Sequence[Any]) -> list[dict[str, Any]]:
        """One record per text: prediction, confidence, probabilities (by label) and tier."""
        import numpy as np

        proba = self.predict_proba(texts)
        blank = np.isnan(proba).any(axis=1)
        scored = iter(self._predictor.records(proba[~blank]))
        empty = {"prediction": None, "confidence": None, "probabilities": None, "tier": "manual"}
        return [dict(empty) if b else next(scored) for b in blank]

    def explain(
        self, texts: str | Sequence[Any], method: str | None = None, target: str | None = None
    ) -> list[dict[str, Any]]:
        """Word-level attributions toward the predicted class (or ``target``), one record per text:
        the prediction as ``predict`` gives it, plus ``tokens`` (text, start, end, score). Methods:
        ``linear`` (SVM), ``integrated_gradients`` (neural runs), ``occlusion`` (any run); the
        default is the first of these that fits the run."""
        from medsent.evaluation.explain import explain

        items = [texts] if isinstance(texts, str) else list(texts)
        return explain(self._predictor, items, method, target)


def _texts(texts: str | Sequence[Any]) -> tuple[list[str], list[bool]]:
    items = [texts] if isinstance(texts, str) else list(texts)
    clean = [t if isinstance(t, str) else "" for t in items]
    from medsent.data.clean import is_blank

    return clean, [is_blank(t) for t in clean]


def load(run: PathLike, *, use_onnx: bool = True) -> Model:
    """Load a run folder (any kind, ensembles included). ``use_onnx=False`` forces PyTorch."""
    from medsent.inference.predict import Predictor

    return Model(Predictor(Path(run), use_onnx=use_onnx))


def run_training(
    cfg: RunConfig,
    data: PathLike | None,
    *,
    val_data: PathLike | None = None,
    test_data: PathLike | None = None,
    out: PathLike | None = None,
    overwrite: bool = False,
    aux_data: Sequence[PathLike | tuple[PathLike, str | None]] = (),
) -> TrainResult:
    """Train one resolved config (what ``medsent train`` runs); returns the full result."""
    from medsent.core.errors import DataError
    from medsent.training.train import train_run

    if data is None:
        raise DataError("--data is required (the training file)")
    target = Path(out) if out is not None else Path("runs") / f"{cfg.model}-seed{cfg.seed}"
    return train_run(
        cfg,
        Path(data),
        target,
        val_path=Path(val_data) if val_data is not None else None,
        test_path=Path(test_data) if test_data is not None else None,
        overwrite=overwrite,
        aux=aux_sources(aux_data),
    )


def aux_sources(items: Sequence[PathLike | tuple[PathLike, str | None]]) -> list[Any]:
    """Auxiliary files as ``path``, ``(path, preset)`` or ``"path:preset"`` (a known preset name)."""
    from medsent.data.presets import DATA_PRESETS, data_layer
    from medsent.training.train import AuxSource

    out = []
    for item in items:
        preset: str | None = None
        if isinstance(item, tuple):
            path, preset = Path(item[0]), item[1]
        else:
            text = str(item)
            head, sep, tail = text.rpartition(":")
            if sep and tail.lower() in DATA_PRESETS:
                path, preset = Path(head), tail
            else:
                path = Path(text)
        out.append(AuxSource(path, data_layer(preset) if preset else {}))
    return out


def train(
    data: PathLike,
    model: str = "svm",
    *,
    val_data: PathLike | None = None,
    test_data: PathLike | None = None,
    out: PathLike | None = None,
    preset: str | None = None,
    text_col: str | None = None,
    label_col: str | None = None,
    rating_col: str | None = None,
    preset_config: str | None = None,
    config: PathLike | None = None,
    overrides: Overrides = None,
    seed: int | None = None,
    overwrite: bool = False,
    aux_data: Sequence[PathLike | tuple[PathLike, str | None]] = (),
) -> Path:
    """Train ``model`` on ``data`` and return the run folder (default ``runs/MODEL-seedN``).

    ``preset`` names the data layout (webmd, drugscom, askapatient); the column arguments override
    it; ``preset_config`` picks the model's V1/V2 preset; ``overrides`` sets any config field.
    """
    from medsent.data.presets import data_layer
    from medsent.training.train import train_config

    layer: dict[str, Any] = {}
    columns = data_layer(preset, text_col, label_col, rating_col)
    if columns:
        layer["data"] = columns
    if seed is not None:
        layer["seed"] = seed
    cfg = train_config(model, preset_config=preset_config, config=config, overrides=overrides, layers=[layer])
    result = run_training(
        cfg, data, val_data=val_data, test_data=test_data, out=out, overwrite=overwrite, aux_data=aux_data
    )
    return result.run_dir


def resume_training(run: PathLike) -> TrainResult:
    """Continue a killed neural run from its last checkpoint (``medsent train --resume``)."""
    from medsent.core.config import build_config
    from medsent.training.train import resume_args, train_run

    run_dir = Path(run)
    info = resume_args(run_dir)
    from medsent.training.train import AuxSource

    return train_run(
        build_config(info["config"]),
        Path(info["train"]),
        run_dir,
        val_path=Path(info["val"]) if info.get("val") else None,
        test_path=Path(info["test"]) if info.get("test") else None,
        resume=True,
        aux=[
            AuxSource(Path(a["path"]), dict(a.get("layer") or {}), bool(a.get("unlabeled")))
            for a in info.get("aux") or []
        ],
        prepare=resume_prepare(info),
        resume_extra={k: info[k] for k in ("distill",) if k in info},
    )


def resume_prepare(info: dict[str, Any]) -> Any:
    """The preparation step a killed run needs again (a distillation's teacher probabilities)."""
    if "distill" not in info:
        return None
    from medsent.core.config import build_config
    from medsent.inference.predict import Predictor
    from medsent.training.distill import teacher_prepare

    cfg = build_config(info["config"])
    cache = info["distill"].get("cache")
    return teacher_prepare(
        Predictor(Path(info["distill"]["teacher"])), cfg.distill, Path(cache) if cache else None
    )


def resume(run: PathLike) -> Path:
    """Finish a killed neural run; returns its folder."""
    return resume_training(run).run_dir


def evaluate(
    run: PathLike | Model,
    data: PathLike,
    *,
    preset: str | None = None,
    text_col: str | None = None,
    label_col: str | None = None,
    rating_col: str | None = None,
    strict: bool = False,
    out: PathLike | None = None,
) -> dict[str, Any]:
    """Score a run on a labelled file with the run's own cleaning and column mapping (flags override).

    Returns the metrics dict ``medsent evaluate --json`` prints (macro-F1, per-class, kappa, ECE,
    confusion matrix, tiers); with ``out`` also writes metrics.json with the threshold sweep and error
    analysis, and the sweep and confusion plots.
    """
    from medsent.data.dataset import load_labeled_for
    from medsent.data.presets import data_layer
    from medsent.evaluation.metrics import compute_metrics
    from medsent.evaluation.tiers import tier_table

    predictor = run._predictor if isinstance(run, Model) else load(run)._predictor
    data_path = Path(data)
    labeled = load_labeled_for(
        predictor.config, data_path, data_layer(preset, text_col, label_col, rating_col, strict)
    )
    proba = predictor.predict_proba(labeled.frame["text"].tolist())
    y = labeled.frame["label"].to_numpy()
    metrics = compute_metrics(y, proba, predictor.offsets)
    routing = getattr(predictor.model, "last_share_to_slow", None)
    if routing is not None:  # a cascade: how many of these reviews the slow model answered
        metrics["share_to_slow"] = float(routing)
    metrics["tiers"] = tier_table(y, proba, predictor.config.tiers, predictor.offsets)
    if predictor.offsets is not None:
        metrics["decision_offsets"] = dict(zip(predictor.labels, map(float, predictor.offsets), strict=True))
    if out is not None:
        _write_evaluation(Path(out), predictor, data_path, labeled.frame, y, proba, metrics)
    return metrics


def _write_evaluation(
    out: Path, predictor: Predictor, data: Path, frame: Any, y: Any, proba: Any, metrics: dict[str, Any]
) -> None:
    from medsent.core.runs import METRICS_FILE, write_json
    from medsent.evaluation.analysis import confusion_heatmap, error_analysis
    from medsent.evaluation.explain import explain_mistakes
    from medsent.evaluation.report import heading, mistake_html, paragraph, write_report
    from medsent.evaluation.tiers import sweep_plot, threshold_sweep

    out.mkdir(parents=True, exist_ok=True)
    sweep = threshold_sweep(y, proba, offsets=predictor.offsets)
    analysis = error_analysis(frame, proba, predictor.offsets)
    explained = explain_mistakes(predictor, frame["text"].tolist(), analysis["confident_mistakes"])
    for plain, rich in zip(analysis["confident_mistakes"], explained, strict=False):
        plain["top_words"] = rich["top_words"]
    write_report(
        out / "mistakes.html",
        f"{predictor.run_dir.name}: most confident mistakes on {data.name}",
        [
            paragraph("Words shaded green pushed toward the wrong answer, red against it.", muted=True),
            heading("Most confident mistakes"),
            *(mistake_html(m) for m in explained),
        ],
    )
    write_json(
        out / METRICS_FILE,
        {
            **metrics,
            "threshold_sweep": sweep,
            "analysis": analysis,
            "run": str(predictor.run_dir),
            "data": str(data),
        },
    )
    sweep_plot(sweep, out / "threshold_sweep.png")
    confusion_heatmap(
        metrics["confusion_matrix"], out / "confusion.png", f"{predictor.run_dir.name} on {data.name}"
    )


def demo_data(folder: PathLike = "runs/.demo-data") -> dict[str, Path]:
    """The embedded Drugs.com sample as two TSV files ({"train": ..., "test": ...}); labels are
    names in the ``rating`` column (pass ``label_col="rating"``)."""
    from medsent.data.demo import extract_demo_data

    return extract_demo_data(Path(folder))


CALIBRATION_OBJECTIVES = ("nll", "macro_f1", "all")


def calibrate(
    run: PathLike,
    data: PathLike,
    *,
    objective: str = "nll",
    preset: str | None = None,
    text_col: str | None = None,
    label_col: str | None = None,
    rating_col: str | None = None,
    strict: bool = False,
    force_offsets: bool = False,
) -> dict[str, Any]:
    """Fit on validation data what predict/evaluate/serve then apply (``medsent calibrate``).

    ``nll``: temperature scaling (calibration.json). ``macro_f1``: per-class offsets on the calibrated
    log-probabilities that maximise macro-F1 (decision.json), with cross-fitted figures. ``all``:
    both, temperature first. Refitting the temperature drops offsets fitted on the old one. Offsets
    are kept only where they hold out of sample (``offsets_hold``) unless ``force_offsets``.
    Returns {"temperature": summary or None, "decision": summary or None}.
    """
    from medsent.core.errors import ConfigError, RunError
    from medsent.core.runs import file_sha256
    from medsent.data.dataset import load_labeled_for
    from medsent.data.presets import data_layer
    from medsent.evaluation.calibration import (
        apply_temperature,
        calibration_summary,
        fit_temperature,
        reliability_diagram,
    )
    from medsent.evaluation.decision import decision_summary, offsets_hold
    from medsent.inference.predict import Predictor

    if objective not in CALIBRATION_OBJECTIVES:
        raise ConfigError(f"unknown objective '{objective}'; known: {', '.join(CALIBRATION_OBJECTIVES)}")
    data_path = Path(data)
    predictor = Predictor(run)
    folder = predictor.run
    labeled = load_labeled_for(
        predictor.config, data_path, data_layer(preset, text_col, label_col, rating_col, strict)
    )
    sha = file_sha256(data_path)
    manifest = folder.manifest
    for role in ("train", "test"):
        info = (manifest.get("files") or {}).get(role)
        if isinstance(info, dict) and info.get("sha256") == sha:
            raise RunError(f"{data_path} is the run's {role} file; calibrate on validation data")
    y = labeled.frame["label"].to_numpy()
    raw = predictor.predict_proba(labeled.frame["text"].tolist(), calibrated=False)
    source = {"path": str(data_path), "sha256": sha}
    out: dict[str, Any] = {"temperature": None, "decision": None}
    temperature = predictor.temperature
    if objective in ("nll", "all"):
        temperature = fit_temperature(raw, y)
        summary = calibration_summary(raw, y, temperature)
        summary["data"] = source
        reliability_diagram(y, raw, apply_temperature(raw, temperature), folder.file("reliability.png"))
        folder.write_calibration(summary)
        if objective == "nll" and folder.decision:
            folder.write_decision(None)  # fitted on the old temperature's probabilities
            summary["dropped_decision_offsets"] = True
        out["temperature"] = summary
    if objective in ("macro_f1", "all"):
        proba = apply_temperature(raw, temperature) if temperature is not None else raw
        summary = decision_summary(proba, y, temperature)
        summary["data"] = source
        summary["kept"] = bool(force_offsets or offsets_hold(summary["crossfit"]))
        folder.write_decision(summary if summary["kept"] else None)
        out["decision"] = summary
    return out
