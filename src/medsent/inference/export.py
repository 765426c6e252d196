"""`medsent export`: a run's network in another runtime's format, checked against medsent itself.

Formats by name: ``onnx`` (a graph inside the run that predict and serve then use) and ``hf`` (a
Hugging Face folder beside the run that transformers loads). Each is written into a temporary folder
and renamed into place only once its check passed, so a failed export leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medsent.core.errors import ConfigError, RunError
from medsent.core.runs import atomic_folder
from medsent.inference.predict import Predictor


@dataclass(frozen=True)
class GraphOptions:
    """ONNX graph choices: ``compact`` keeps the network as trained instead of a TextCNN's lookup
    tables; ``tables`` is those tables' number type (None: the default, fp16); ``quantize``: int8
    weights for a transformer's graph, checked on ``check``."""

    compact: bool = False
    tables: str | None = None
    quantize: str | None = None
    check: tuple[list[str], Any] | None = None  # labelled reviews (texts, labels) an int8 graph is scored on


@dataclass(frozen=True)
class ExportFormat:
    name: str
    summary: str
    writer: Callable[[Predictor, Path, list[str] | None, GraphOptions], dict[str, Any]]
    default_target: Callable[[Path], Path]
    inside_run: bool


def _onnx_writer(
    predictor: Predictor, folder: Path, probes: list[str] | None, graph: GraphOptions
) -> dict[str, Any]:
    from medsent.inference.onnx import write_onnx

    return write_onnx(
        predictor,
        folder,
        probes,
        compact=graph.compact,
        tables=graph.tables or "fp16",
        quantize=graph.quantize,
        check=graph.check,
    )


def _hf_writer(
    predictor: Predictor, folder: Path, probes: list[str] | None, graph: GraphOptions
) -> dict[str, Any]:
    from medsent.inference.hf_export import write_hf

    return write_hf(predictor, folder, probes)


FORMATS: dict[str, ExportFormat] = {
    "onnx": ExportFormat(
        "onnx", "ONNX graph inside the run (predict/serve use it)", _onnx_writer, lambda r: r / "onnx", True
    ),
    "hf": ExportFormat(
        "hf",
        "Hugging Face folder (AutoModelForSequenceClassification)",
        _hf_writer,
        lambda r: r.parent / f"{r.name}-hf",
        False,
    ),
}


def export_format(name: str) -> ExportFormat:
    key = name.lower()
    if key not in FORMATS:
        raise ConfigError(f"unknown export format '{name}'; known: {', '.join(sorted(FORMATS))}")
    return FORMATS[key]


def export_run(
    run_dir: Path,
    fmt: str = "onnx",
    out: Path | None = None,
    overwrite: bool = False,
    probe_texts: list[str] | None = None,
    compact: bool = False,
    tables: str | None = None,
    quantize: str | None = None,
    data: Path | None = None,
) -> dict[str, Any]:
    """Export ``run_dir`` as ``fmt``; returns what was written and measured (``path`` included).

    ``compact``: ONNX of the network as trained, never its (larger, faster) table-lookup form;
    ``tables``: fp16 (default) or fp32 lookup tables; ``quantize="int8"``: int8 weights, refused
    if they lose more than 0.005 macro-F1 on ``data`` (labelled reviews, read with the run's own
    column mapping and cleaning)."""
    spec = export_format(fmt)
    if quantize is not None and spec.name != "onnx":
        raise ConfigError(f"--quantize applies to onnx exports only, not {spec.name}")
    if quantize is not None and data is None:
        raise ConfigError("--quantize int8 needs labelled reviews to check the graph on: --data VAL.csv")
    if compact and spec.name != "onnx":
        raise ConfigError(f"--compact applies to onnx exports only, not {spec.name}")
    if tables is not None and (spec.name != "onnx" or compact):
        raise ConfigError("--tables applies to onnx lookup graphs only (not with --compact or --format hf)")
    if out is not None and spec.inside_run:
        raise ConfigError(f"--out does not apply to {spec.name}: the export lives inside the run")
    target = out if out is not None else spec.default_target(run_dir)
    if target.exists() and not overwrite:
        raise RunError(f"{target} already exists; pass --overwrite to export again")
    predictor = Predictor(run_dir, use_onnx=False)  # the reference is always the PyTorch model
    if not predictor.kind.trainable:
        raise ConfigError(
            f"export one member run at a time; a '{predictor.kind.name}' run is a combination of runs"
        )
    check = None
    if quantize is not None and data is not None:
        from medsent.data.dataset import load_labeled_for
        from medsent.inference.onnx import QUANTIZE_TYPES
        from medsent.models.registry import get_model_spec

        if quantize not in QUANTIZE_TYPES:
            raise ConfigError(f"unknown quantization '{quantize}'; known: {', '.join(QUANTIZE_TYPES)}")
        if get_model_spec(predictor.model_name).family != "transformer":
            raise ConfigError(
                f"--quantize int8 is for transformer runs; this run's model is '{predictor.model_name}'"
            )

        frame = load_labeled_for(predictor.config, data).frame
        check = (frame["text"].tolist(), frame["label"].to_numpy())
    inside = target.resolve() == run_dir.resolve() or run_dir.resolve() in target.resolve().parents
    if inside and not spec.inside_run:
        raise ConfigError(f"{target} is inside the run folder; export to a folder of its own")
    with atomic_folder(target) as tmp:
        meta = spec.writer(predictor, tmp, probe_texts, GraphOptions(compact, tables, quantize, check))
    return {**meta, "path": str(target)}
