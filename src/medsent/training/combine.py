"""Runs made from other runs: an ensemble's voting weights and a cascade's confidence threshold,
fitted on validation data and saved as run folders the inference side loads (``inference.ensemble``,
``inference.cascade``)."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medsent.core.errors import ConfigError
from medsent.core.labels import LABELS
from medsent.core.runs import RunFolder, RunWriter, check_same_task, write_json
from medsent.inference.cascade import CASCADE_FILE, combine, route
from medsent.inference.ensemble import ENSEMBLE_FILE, METHODS, vote


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
    from medsent.inference.predict import Predictor

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


def fit_threshold(
    fast_proba: np.ndarray, slow_proba: np.ndarray, y: np.ndarray, tolerance: float
) -> dict[str, Any]:
    """The lowest confidence threshold whose cascade keeps macro-F1 within ``tolerance`` of the
    slow model's, there and at every higher threshold; with the sweep it was chosen from."""
    from medsent.evaluation.metrics import macro_f1_many

    y = np.asarray(y, dtype=int)
    slow_f1 = float(macro_f1_many(y, slow_proba.argmax(axis=1)[None, :])[0])
    fast_f1 = float(macro_f1_many(y, fast_proba.argmax(axis=1)[None, :])[0])
    candidates = np.unique(np.concatenate([np.round(np.linspace(1 / 3, 1.0, 135), 4), [1.0 + 1e-9]]))
    preds = np.stack(
        [combine(fast_proba, slow_proba, route(fast_proba, t)).argmax(axis=1) for t in candidates]
    )
    f1 = macro_f1_many(y, preds)
    ok = f1 >= slow_f1 - tolerance
    # Lowest threshold from which every higher one also holds.
    holds_above = np.flip(np.logical_and.accumulate(np.flip(ok)))
    index = int(np.argmax(holds_above)) if holds_above.any() else len(candidates) - 1
    threshold = float(candidates[index])
    share = float(route(fast_proba, threshold).mean())
    return {
        "threshold": threshold,
        "tolerance": tolerance,
        "val_macro_f1_fast": fast_f1,
        "val_macro_f1_slow": slow_f1,
        "val_macro_f1_cascade": float(f1[index]),
        "val_share_to_slow": share,
        "val_share_fast": 1 - share,
        "sweep": [
            {"threshold": float(t), "macro_f1": float(s), "share_to_slow": float(route(fast_proba, t).mean())}
            for t, s in zip(candidates[::4], f1[::4], strict=True)
        ],
    }


def build_cascade(
    fast_run: Path,
    slow_run: Path,
    data: Path,
    out: Path,
    tolerance: float = 0.005,
    layer: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Fit the threshold on ``data`` (validation) and save the cascade as a run of its own."""
    from medsent.core.runs import file_sha256
    from medsent.data.dataset import load_labeled_for
    from medsent.inference.predict import Predictor

    if not 0 <= tolerance < 1:
        raise ConfigError("--tolerance must be within [0, 1)")
    if fast_run.resolve() == slow_run.resolve():
        raise ConfigError("a cascade needs two different runs")
    for run in (fast_run, slow_run):
        if run.resolve() == out.resolve():
            raise ConfigError(f"the cascade folder {out} is also one of its members")
    fast, slow = Predictor(fast_run), Predictor(slow_run)
    check_same_task([fast.config, slow.config], [fast_run.name, slow_run.name])
    labeled = load_labeled_for(fast.config, data, layer or {})
    texts, y = labeled.frame["text"].tolist(), labeled.frame["label"].to_numpy()
    fitted = fit_threshold(fast.predict_proba(texts), slow.predict_proba(texts), y, tolerance)
    names = {"fast": f"fast-{fast_run.resolve().name}", "slow": f"slow-{slow_run.resolve().name}"}
    writer = RunWriter(out, overwrite=overwrite)
    try:
        members = writer.path / "members"
        members.mkdir()
        for role, run in (("fast", fast_run), ("slow", slow_run)):
            shutil.copytree(run, members / names[role], symlinks=False)
            RunFolder(members / names[role])  # the copy is checked like any run
        spec = {
            "fast": f"members/{names['fast']}",
            "slow": f"members/{names['slow']}",
            **fitted,
            "fit_data": {"path": str(data), "sha256": file_sha256(data), "n": len(y)},
        }
        write_json(writer.path / CASCADE_FILE, spec)
        writer.write_labels()
        writer.write_metrics({"members": list(names.values())})
        writer.commit({"model": "cascade", "family": "cascade", "members": list(names.values())})
    except BaseException:
        writer.abort()
        raise
    return spec
