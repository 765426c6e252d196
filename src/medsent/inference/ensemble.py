"""Ensembles of trained runs, saved as a run of their own.

The member run folders are copied inside the ensemble (``members/NN-name``), so the ensemble is as
self-describing as any run: ``predict``, ``evaluate``, ``calibrate`` and ``serve`` take it unchanged.
Soft voting averages the members' calibrated probabilities (optionally weighted); hard voting counts
(weighted) votes and reports the vote shares as probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from medsent.core.errors import RunError
from medsent.core.runs import RunFolder, check_same_task, read_json
from medsent.inference.members import MemberRun, OpenRun, member_paths

if TYPE_CHECKING:
    from medsent.core.config import RunConfig

ENSEMBLE_FILE = "ensemble.json"
Method = Literal["soft", "hard"]
METHODS: tuple[str, ...] = ("soft", "hard")


def vote(
    probas: Sequence[np.ndarray],
    weights: np.ndarray,
    method: str,
    decisions: Sequence[np.ndarray] | None = None,
) -> np.ndarray:
    """Combine member probabilities; rows of the result sum to 1.

    Hard voting counts each member's decision (``decisions``: its own decision rule applied; the
    plain argmax when not given); soft voting averages the calibrated probabilities.
    """
    stack = np.stack(probas)  # members x rows x classes
    if method == "soft":
        out = np.tensordot(weights, stack, axes=1)
    else:
        k = stack.shape[2]
        votes = np.stack(decisions) if decisions is not None else stack.argmax(axis=2)
        onehot = np.eye(k)[votes]
        out = np.tensordot(weights, onehot, axes=1)
        # Ties go to the class with the higher mean probability, by a margin too small to show.
        out = out + 1e-6 * stack.mean(axis=0)
    return np.asarray(out / out.sum(axis=1, keepdims=True))


class EnsembleModel:
    """Member predictors plus the voting rule; takes raw texts (members clean them their own way)."""

    def __init__(
        self, members: Sequence[MemberRun], names: list[str], weights: np.ndarray, method: str
    ) -> None:
        self.members, self.names, self.weights, self.method = list(members), names, weights, method
        self.config: RunConfig = members[0].config

    def member_probas(self, texts: Sequence[str]) -> list[np.ndarray]:
        return [m.predict_proba(texts) for m in self.members]

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        probas = self.member_probas(texts)
        decisions = [m.decide(p) for m, p in zip(self.members, probas, strict=True)]
        return vote(probas, self.weights, self.method, decisions)

    @property
    def backend(self) -> str:
        return "+".join(sorted({m.backend for m in self.members}))

    @classmethod
    def load(cls, run: RunFolder, use_onnx: bool, open_run: OpenRun) -> EnsembleModel:
        run_dir = run.path
        spec = read_json(run.file(ENSEMBLE_FILE))
        try:
            method = str(spec["method"])
            rel = [str(p) for p in spec["members"]]
            weights = np.asarray(spec["weights"], dtype=float)
        except (KeyError, TypeError, ValueError):
            raise RunError(f"{run_dir / ENSEMBLE_FILE} is not a valid ensemble description") from None
        if method not in METHODS or len(rel) != len(weights) or not rel or (weights < 0).any():
            raise RunError(f"{run_dir / ENSEMBLE_FILE} is not a valid ensemble description")
        members = [open_run(path, use_onnx) for path in member_paths(run, rel, ENSEMBLE_FILE)]
        names = [Path(p).name for p in rel]
        check_same_task([m.config for m in members], names)
        return cls(members, names, weights / weights.sum(), method)
