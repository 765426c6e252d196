"""Ensembles of trained runs, saved as a run of their own.

The member run folders are copied inside the ensemble (``members/NN-name``), so the ensemble is as
self-describing as any run: ``predict``, ``evaluate``, ``calibrate`` and ``serve`` take it unchanged.
Soft voting averages the members' calibrated probabilities (optionally weighted); hard voting counts
(weighted) votes and reports the vote shares as probabilities.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from medsent.errors import ConfigError, RunError
from medsent.labels import LABELS
from medsent.runs import RunFolder, RunWriter, check_same_task, read_json, write_json

if TYPE_CHECKING:
    from medsent.config import RunConfig
    from medsent.models.registry import LoadedRun
    from medsent.predict import Predictor

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


def fit_weights(probas: Sequence[np.ndarray], y: np.ndarray) -> np.ndarray:
    """Member weights on the simplex minimising validation log-loss (softmax parametrisation)."""
    from scipy.optimize import minimize

    stack = np.clip(np.stack(probas), 1e-9, 1.0)
    rows = np.arange(len(y))
    picked = stack[:, rows, y]  # members x rows: probability each member gives the true class

    def loss(theta: np.ndarray) -> float:
        w = np.exp(theta - theta.max())
        w /= w.sum()
        return float(-np.log(np.clip(w @ picked, 1e-12, None)).mean())

    res = minimize(
        loss, np.zeros(len(probas)), method="Nelder-Mead", options={"xatol": 1e-4, "maxiter": 2000}
    )
    w = np.exp(res.x - res.x.max())
    return np.asarray(w / w.sum())


class EnsembleModel:
    """Member predictors plus the voting rule; takes raw texts (members clean them their own way)."""

    def __init__(self, members: list[Predictor], names: list[str], weights: np.ndarray, method: str) -> None:
        self.members, self.names, self.weights, self.method = members, names, weights, method
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
    def load(cls, run: RunFolder, use_onnx: bool = True) -> EnsembleModel:
        from medsent.predict import Predictor

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
        root = run_dir.resolve()
        members = []
        for p in rel:
            path = (run_dir / p).resolve()
            if root not in path.parents:  # members live inside the ensemble folder, nowhere else
                raise RunError(f"{run_dir / ENSEMBLE_FILE}: member path '{p}' leaves the run folder")
            members.append(Predictor(path, use_onnx=use_onnx))
        names = [Path(p).name for p in rel]
        check_same_task([m.config for m in members], names)
        return cls(members, names, weights / weights.sum(), method)


def load_run(run: RunFolder, use_onnx: bool = True) -> LoadedRun:
    """Registry loader for ``ensemble`` runs: members get the raw text and clean it their own way."""
    from medsent.models.registry import LoadedRun

    model = EnsembleModel.load(run, use_onnx)
    return LoadedRun(model=model, config=model.config, raw_text=True, backend=model.backend)


def build_ensemble(
    run_dirs: Sequence[Path],
    out: Path,
    method: str = "soft",
    weights: Sequence[float] | None = None,
    fit_on: tuple[list[str], np.ndarray, dict[str, Any]] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Copy the members into a new run folder and record how they vote.

    ``fit_on`` is (texts, labels, data description) of a validation set to fit the weights on.
    """
    from medsent.evaluation.metrics import compute_metrics
    from medsent.predict import Predictor

    if method not in METHODS:
        raise ConfigError(f"unknown ensemble method '{method}'; known: {', '.join(METHODS)}")
    if len(run_dirs) < 2:
        raise ConfigError("an ensemble needs at least two runs")
    if weights is not None and fit_on is not None:
        raise ConfigError("give --weights or --fit-weights, not both")
    if weights is not None and (len(weights) != len(run_dirs) or min(weights) < 0 or sum(weights) <= 0):
        raise ConfigError(f"--weights needs {len(run_dirs)} non-negative numbers with a positive sum")
    out_resolved = out.resolve()
    for run in run_dirs:
        if run.resolve() == out_resolved:
            raise ConfigError(f"the ensemble folder {out} is also one of its members")
    predictors = [Predictor(r) for r in run_dirs]
    names = [f"{i:02d}-{Path(r).resolve().name}" for i, r in enumerate(run_dirs)]
    check_same_task([p.config for p in predictors], names)
    w = np.full(len(run_dirs), 1.0 / len(run_dirs)) if weights is None else np.asarray(weights, float)
    w = w / w.sum()
    report: dict[str, Any] = {}
    if fit_on is not None:
        texts, y, source = fit_on
        probas = [p.predict_proba(texts) for p in predictors]
        w = fit_weights(probas, y)
        report = {
            "fit_data": source,
            "members_val_macro_f1": {
                n: compute_metrics(y, pr)["macro_f1"] for n, pr in zip(names, probas, strict=True)
            },
            "val_macro_f1_equal": compute_metrics(y, vote(probas, np.full(len(w), 1 / len(w)), method))[
                "macro_f1"
            ],
            "val_macro_f1_fitted": compute_metrics(y, vote(probas, w, method))["macro_f1"],
        }
    writer = RunWriter(out, overwrite=overwrite)
    try:
        members_dir = writer.path / "members"
        members_dir.mkdir()
        for run, name in zip(run_dirs, names, strict=True):
            shutil.copytree(run, members_dir / name, symlinks=False)
            RunFolder(members_dir / name)  # the copy is checked like any run
        spec = {
            "method": method,
            "members": [f"members/{n}" for n in names],
            "weights": [float(x) for x in w],
            "labels": list(LABELS),
            **report,
        }
        write_json(writer.path / ENSEMBLE_FILE, spec)
        writer.write_labels()
        members_meta = {n: p.run.metrics for n, p in zip(names, predictors, strict=True)}
        writer.write_metrics(_summed_costs(members_meta))
        writer.commit({"model": "ensemble", "family": "ensemble", "method": method, "members": names})
    except BaseException:
        writer.abort()
        raise
    return spec


def _summed_costs(members: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """An ensemble costs what its members cost together."""
    out: dict[str, Any] = {"members": list(members)}
    for key in ("fit_seconds", "params_total"):
        values = [m.get(key) for m in members.values()]
        if all(isinstance(v, (int, float)) for v in values):
            out[key] = sum(values)
    return out
