"""Rebuild a trained model from its run folder alone and score raw texts.

The run's kind (run.json) names its loader in the registry; this module knows no model family.
Kept free of heavy imports (no Lightning) so ``medsent predict --text`` starts fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medsent.config import RunConfig
from medsent.data.clean import normalize_text
from medsent.errors import RunError
from medsent.labels import LABELS
from medsent.models.registry import RunModel, run_kind
from medsent.runs import check_run_folder, load_config, read_json

__all__ = ["Predictor", "label_order", "load_config"]


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
        self.kind = run_kind(str(self.meta["model"]))
        self._order = label_order(self.run_dir)
        loaded = self.kind.load_run(self.run_dir, use_onnx)
        self.model: RunModel = loaded.model
        self.config: RunConfig = loaded.config
        self.raw_text = loaded.raw_text
        self.backend = loaded.backend
        self.temperature = _temperature(self.run_dir)
        from medsent.evaluation.decision import read_offsets

        # The macro-F1 decision rule (``calibrate --objective macro_f1``): moves decisions only.
        self.offsets: np.ndarray | None = read_offsets(self.run_dir, self.temperature)

    @property
    def model_name(self) -> str:
        """The run's kind ("ensemble") or, for a trained run, its model ("textcnn")."""
        return self.config.model if self.kind.trainable else self.kind.name

    def predict_proba(self, texts: Sequence[str], calibrated: bool = True) -> np.ndarray:
        """Probabilities, temperature-scaled when the run was calibrated (``medsent calibrate``)."""
        return self._finish(self.model.predict_proba(self._clean(texts)), calibrated)

    @property
    def has_features(self) -> bool:
        """Whether the run can share the review vectors its head reads (a single neural run)."""
        return callable(getattr(self.model, "proba_and_features", None))

    def proba_and_features(
        self, texts: Sequence[str], calibrated: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """``predict_proba`` and the pooled review vectors behind it, in one pass (what a student
        matches under ``distill.hint_weight``)."""
        if not self.has_features:
            raise RunError(
                f"{self.run_dir}: a {self.model_name} run has no review vectors to share; "
                "hints need a single neural teacher run"
            )
        proba, feats = self.model.proba_and_features(self._clean(texts))  # type: ignore[attr-defined]
        return self._finish(proba, calibrated), feats

    def _clean(self, texts: Sequence[str]) -> list[str]:
        return list(texts) if self.raw_text else [normalize_text(t, self.config.clean) for t in texts]

    def _finish(self, proba: np.ndarray, calibrated: bool) -> np.ndarray:
        if self._order is not None:
            proba = proba[:, self._order]
        proba = proba / proba.sum(axis=1, keepdims=True)
        if calibrated and self.temperature is not None:
            from medsent.evaluation.calibration import apply_temperature

            proba = apply_temperature(proba, self.temperature)
        return proba

    def decide(self, proba: np.ndarray) -> np.ndarray:
        """Class ids for calibrated probabilities: the argmax, moved by the run's offsets if any."""
        from medsent.evaluation.decision import decide

        return decide(proba, self.offsets)

    def records(self, proba: np.ndarray) -> list[dict[str, Any]]:
        """prediction, confidence (the calibrated probability of the decided class), probabilities
        and confidence tier, one record per row."""
        from medsent.evaluation.tiers import tier_of

        out = []
        for row, best in zip(proba, self.decide(proba), strict=True):
            out.append(
                {
                    "prediction": self.labels[int(best)],
                    "confidence": float(row[best]),
                    "probabilities": {name: float(p) for name, p in zip(self.labels, row, strict=True)},
                    "tier": tier_of(float(row[best]), self.config.tiers),
                }
            )
        return out

    def predict(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """One record per text (see ``records``)."""
        return self.records(self.predict_proba(texts))
