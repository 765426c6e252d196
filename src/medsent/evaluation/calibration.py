"""Temperature scaling (Guo et al., 2017) for any run, fitted on validation data.

It divides the log-probabilities by one scalar T: the argmax (and so every metric but calibration)
is unchanged, only the confidence is corrected. Working on log-probabilities, not raw logits, lets
the same code serve the SVM's calibrated probabilities and the networks' softmax outputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

from medsent.evaluation.metrics import expected_calibration_error
from medsent.inference.decisions import EPS as _EPS
from medsent.inference.decisions import apply_temperature


def nll(proba: np.ndarray, y: np.ndarray) -> float:
    return float(-np.log(np.clip(proba[np.arange(len(y)), y], _EPS, 1.0)).mean())


def fit_temperature(proba: np.ndarray, y: np.ndarray) -> float:
    """The T in [0.05, 20] that minimises validation negative log-likelihood."""
    y = np.asarray(y, dtype=int)
    result = minimize_scalar(
        lambda log_t: nll(apply_temperature(proba, float(np.exp(log_t))), y),
        bounds=(np.log(0.05), np.log(20.0)),
        method="bounded",
    )
    return float(np.exp(result.x))


def crossfit_ece(proba: np.ndarray, y: np.ndarray, folds: int = 2, seed: int = 0) -> float:
    """ECE after scaling, each review scored by a temperature fitted without it (honest, unlike in-sample)."""
    y = np.asarray(y, dtype=int)
    if len(y) < 2 * folds:
        return float("nan")
    order = np.random.default_rng(seed).permutation(len(y))
    scaled = np.empty_like(proba)
    for part in np.array_split(order, folds):
        rest = np.setdiff1d(order, part)
        scaled[part] = apply_temperature(proba[part], fit_temperature(proba[rest], y[rest]))
    return expected_calibration_error(y, scaled)


def calibration_summary(proba: np.ndarray, y: np.ndarray, temperature: float) -> dict[str, Any]:
    after = apply_temperature(proba, temperature)
    return {
        "temperature": temperature,
        "n": len(y),
        "ece_before": expected_calibration_error(y, proba),
        "ece_after": expected_calibration_error(y, after),
        "ece_after_crossfit": crossfit_ece(proba, y),
        "nll_before": nll(proba, y),
        "nll_after": nll(after, y),
    }


def reliability_diagram(
    y: np.ndarray, before: np.ndarray, after: np.ndarray, path: Path, n_bins: int = 10
) -> Path:
    """Accuracy per confidence bin before and after scaling, against the diagonal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges = np.linspace(0, 1, n_bins + 1)
    centers = (edges[:-1] + edges[1:]) / 2
    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect")
    for proba, label in ((before, "before"), (after, "after")):
        conf = proba.max(axis=1)
        correct = proba.argmax(axis=1) == y
        idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
        acc = [correct[idx == b].mean() if (idx == b).any() else np.nan for b in range(n_bins)]
        ece = expected_calibration_error(y, proba)
        ax.plot(centers, acc, marker="o", label=f"{label} (ECE {ece:.3f})")
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title("Reliability diagram")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return path
