"""Rebuild a trained model from its run folder alone and score raw texts.

The run's kind (run.json) picks its family's loader (``inference.loaders``); this module knows no
model family.
Kept free of heavy imports (no Lightning) so ``medsent predict --text`` starts fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medsent.core.config import RunConfig
from medsent.core.labels import LABELS
from medsent.core.runs import RunFolder
from medsent.data.clean import normalize_text
from medsent.inference.loaders import RunModel, load_run
from medsent.models.registry import run_kind

__all__ = ["Predictor"]


class Predictor:
    """Raw text in, calibrated class probabilities out; the same cleaning as in training."""

    def __init__(self, run: str | Path | RunFolder, use_onnx: bool = True) -> None:
        """``use_onnx=False``: the PyTorch network even where the run has an ONNX export."""
        self.run = run if isinstance(run, RunFolder) else RunFolder(run)
        self.run_dir = self.run.path
        self.meta: dict[str, Any] = self.run.meta
        self.labels = list(LABELS)
        self.kind = run_kind(self.run.kind)
        self._order = self.run.label_order
        loaded = load_run(self.run, self.kind, use_onnx, Predictor)
        self.model: RunModel = loaded.model
        self.config: RunConfig = loaded.config
        self.raw_text = loaded.raw_text
        self.backend = loaded.backend
        self.temperature = self.run.temperature
        # The macro-F1 decision rule (``calibrate --objective macro_f1``): moves decisions only.
        self.offsets: np.ndarray | None = self.run.offsets(self.temperature)

    @property
    def model_name(self) -> str:
        """The run's kind ("ensemble") or, for a trained run, its model ("textcnn")."""
        return self.config.model if self.kind.trainable else self.kind.name

    def predict_proba(self, texts: Sequence[str], calibrated: bool = True) -> np.ndarray:
        """Probabilities, temperature-scaled when the run was calibrated (``medsent calibrate``)."""
        return self._finish(self.model.predict_proba(self.clean(texts)), calibrated)

    def clean(self, texts: Sequence[str]) -> list[str]:
        """The texts as the model reads them: cleaned the way its training data was (members of a
        combined run clean their own)."""
        return list(texts) if self.raw_text else [normalize_text(t, self.config.clean) for t in texts]

    def _finish(self, proba: np.ndarray, calibrated: bool) -> np.ndarray:
        if self._order is not None:
            proba = proba[:, self._order]
        proba = proba / proba.sum(axis=1, keepdims=True)
        if calibrated and self.temperature is not None:
            from medsent.inference.decisions import apply_temperature

            proba = apply_temperature(proba, self.temperature)
        return proba

    def model_column(self, label: int) -> int:
        """Where class ``label`` (in ``LABELS`` order) sits in the model's own output."""
        return int(self._order[label]) if self._order is not None else label

    def decide(self, proba: np.ndarray) -> np.ndarray:
        """Class ids for calibrated probabilities: the argmax, moved by the run's offsets if any."""
        from medsent.inference.decisions import decide

        return decide(proba, self.offsets)

    def records(self, proba: np.ndarray) -> list[dict[str, Any]]:
        """prediction, confidence (the calibrated probability of the decided class), probabilities
        and confidence tier, one record per row."""
        from medsent.inference.decisions import tier_of

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
