"""How a run turns class probabilities into an answer: temperature, decision offsets, confidence tier.

These are the rules a saved run applies at prediction time. The evaluation side fits their
parameters (``evaluation.calibration``, ``evaluation.decision``, ``evaluation.tiers``).
"""

from __future__ import annotations

import numpy as np

from medsent.core.config import TierConfig

EPS = 1e-12


def decide(proba: np.ndarray, offsets: np.ndarray | None = None) -> np.ndarray:
    """Class ids: argmax of log p + offsets (plain argmax without offsets; see ``decision``)."""
    proba = np.asarray(proba, dtype=float)
    if offsets is None:
        return np.asarray(proba.argmax(axis=1))
    return np.asarray((np.log(np.clip(proba, EPS, 1.0)) + np.asarray(offsets)[None, :]).argmax(axis=1))


def apply_temperature(proba: np.ndarray, temperature: float) -> np.ndarray:
    z = np.log(np.clip(proba, EPS, 1.0)) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True))


TIERS = ("auto", "review", "manual")


def tier_of(confidence: float, cfg: TierConfig) -> str:
    if confidence >= cfg.auto:
        return "auto"
    return "review" if confidence >= cfg.review else "manual"


def decision_confidence(
    proba: np.ndarray, offsets: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The decided class and its calibrated probability (the confidence a tier is read from)."""
    pred = decide(proba, offsets)
    return pred, proba[np.arange(len(pred)), pred]
