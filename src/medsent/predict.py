"""Rebuild a trained model from its run folder alone and score raw texts.

Kept free of heavy imports (no Lightning) so ``medsent predict --text`` starts fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from pydantic import ValidationError

from medsent.config import RunConfig, format_validation_error
from medsent.data.clean import normalize_text
from medsent.errors import RunError
from medsent.labels import LABELS
from medsent.models.registry import get_model_spec
from medsent.runs import check_run_folder, read_json

ENSEMBLE = "ensemble"


class ProbabilisticModel(Protocol):
    def predict_proba(self, texts: Sequence[str]) -> np.ndarray: ...


def load_config(run_dir: Path) -> RunConfig:
    try:
        return RunConfig.model_validate(read_json(run_dir / "config.json"))
    except ValidationError as exc:
        raise RunError(f"{run_dir / 'config.json'} is invalid: {format_validation_error(exc)}") from None


def negation_for(cfg: RunConfig) -> bool:
    spec = get_model_spec(cfg.model)
    return spec.negation_default if cfg.text.negation is None else cfg.text.negation


def _load_model(run_dir: Path, cfg: RunConfig, use_onnx: bool = True) -> ProbabilisticModel:
    spec = get_model_spec(cfg.model)
    if spec.family == "sklearn":
        from medsent.models.svm import SvmClassifier

        return SvmClassifier.load(run_dir / "model", cfg.svm, negation_for(cfg), cfg.text.lowercase, cfg.seed)
    if spec.family in ("neural", "transformer"):
        from medsent.neural.infer import NeuralClassifier
        from medsent.neural.onnx import onnx_enabled, onnx_path, ort_max_rows

        exported = onnx_path(run_dir)
        use = exported if use_onnx and exported.is_file() and onnx_enabled() else None
        return NeuralClassifier.load(run_dir / "model", cfg, use, ort_max_rows(run_dir))
    raise RunError(f"run {run_dir} has model family '{spec.family}', which this version cannot load")


def label_order(run_dir: Path) -> list[int] | None:
    """Column order that maps a run's own label order onto ours; refuses a different label set."""
    stored = read_json(run_dir / "labels.json").get("labels")
    if stored == list(LABELS):
        return None
    if not isinstance(stored, list) or sorted(map(str, stored)) != sorted(LABELS):
        raise RunError(f"{run_dir}: label map {stored} is not a permutation of {list(LABELS)}")
    return [stored.index(name) for name in LABELS]


def _temperature(run_dir: Path) -> float | None:
    path = run_dir / "calibration.json"
    if not path.exists():
        return None
    data = read_json(path)
    value = data.get("temperature") if isinstance(data, dict) else None
    if not isinstance(value, (int, float)) or not 0 < value < 1e3:
        raise RunError(f"{path} has no valid temperature")
    return float(value)


class Predictor:
    """Raw text in, calibrated class probabilities out; the same cleaning as in training."""

    def __init__(self, run_dir: str | Path, use_onnx: bool = True) -> None:
        """``use_onnx=False``: the PyTorch network even where the run has an ONNX export."""
        self.run_dir = Path(run_dir)
        self.meta: dict[str, Any] = check_run_folder(self.run_dir)
        self.labels = list(LABELS)
        self.is_ensemble = self.meta.get("model") == ENSEMBLE
        self.model: ProbabilisticModel
        if self.is_ensemble:
            from medsent.ensemble import EnsembleModel

            ensemble = EnsembleModel.load(self.run_dir)
            self.model, self.config, self._order = ensemble, ensemble.config, None
        else:
            self.config = load_config(self.run_dir)
            self._order = label_order(self.run_dir)
            self.model = _load_model(self.run_dir, self.config, use_onnx)
        self.temperature = _temperature(self.run_dir)
        members = getattr(self.model, "members", None)
        if members is not None:
            self.backend = "+".join(sorted({m.backend for m in members}))
        else:
            self.backend = str(getattr(getattr(self.model, "model", None), "backend", "native"))

    def predict_proba(self, texts: Sequence[str], calibrated: bool = True) -> np.ndarray:
        """Probabilities, temperature-scaled when the run was calibrated (``medsent calibrate``)."""
        # An ensemble's members clean the raw text each with their own settings.
        cleaned = list(texts) if self.is_ensemble else [normalize_text(t, self.config.clean) for t in texts]
        proba = self.model.predict_proba(cleaned)
        if self._order is not None:
            proba = proba[:, self._order]
        proba = proba / proba.sum(axis=1, keepdims=True)
        if calibrated and self.temperature is not None:
            from medsent.evaluation.calibration import apply_temperature

            proba = apply_temperature(proba, self.temperature)
        return proba

    def predict(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        proba = self.predict_proba(texts)
        out = []
        from medsent.evaluation.tiers import tier_of

        for row in proba:
            best = int(row.argmax())
            out.append(
                {
                    "prediction": self.labels[best],
                    "confidence": float(row[best]),
                    "probabilities": {name: float(p) for name, p in zip(self.labels, row, strict=True)},
                    "tier": tier_of(float(row[best]), self.config.tiers),
                }
            )
        return out
