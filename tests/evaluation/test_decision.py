"""The macro-F1 decision rule: offsets on log-probabilities, fitted on validation, cross-fitted."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from medsent.core.errors import RunError
from medsent.evaluation.decision import crossfit, fit_offsets, offsets_hold
from medsent.inference.decisions import decide
from medsent.inference.predict import Predictor


def _shy_neutral(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities of a model that under-calls the middle class, as real ones do."""
    rng = np.random.default_rng(seed)
    y = rng.choice(3, size=n, p=[0.4, 0.15, 0.45])
    logits = rng.normal(0, 1, size=(n, 3))
    logits[np.arange(n), y] += 1.6
    logits[:, 1] -= 1.0  # Neutral's score is pushed down
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return proba, y


def test_offsets_raise_the_shy_class_and_macro_f1() -> None:
    proba, y = _shy_neutral(3000, seed=0)
    assert (decide(proba) == proba.argmax(axis=1)).all()
    off = fit_offsets(proba, y)
    assert off[0] == 0.0 and off[1] > 0.3
    before = f1_score(y, decide(proba), average="macro")
    after = f1_score(y, decide(proba, off), average="macro")
    assert after > before + 0.01
    fresh, y2 = _shy_neutral(3000, seed=1)  # the gain holds on new data from the same model
    assert f1_score(y2, decide(fresh, off), average="macro") > f1_score(y2, decide(fresh), average="macro")
    cf = crossfit(proba, y, repeats=3)
    assert cf["macro_f1_gain"] > 0.01 and offsets_hold(cf)


def test_offsets_stay_near_zero_where_the_argmax_is_already_right() -> None:
    rng = np.random.default_rng(3)
    y = rng.choice(3, size=2000)
    logits = rng.normal(0, 1, size=(2000, 3))
    logits[np.arange(2000), y] += 2.0
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    cf = crossfit(proba, y, repeats=3)
    assert abs(cf["macro_f1_gain"]) < 0.01 and not offsets_hold(cf)


def test_calibrate_macro_f1_is_applied_everywhere_and_dropped_with_a_new_temperature(
    cli, svm_run: Path, val_csv: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    run = tmp_path / "svm"
    shutil.copytree(svm_run, run)
    res = cli("calibrate", run, "--data", val_csv, "--objective", "all", "--force-offsets")
    assert res.code == 0 and "cross-fitted" in res.out and "offsets kept" in res.out, res.err
    saved = json.loads((run / "decision.json").read_text())
    off = np.array([saved["offsets"][k] for k in ("Negative", "Neutral", "Positive")])
    predictor = Predictor(run)
    texts = pd.read_csv(val_csv)["review"].dropna().tolist()[:80]
    proba = predictor.predict_proba(texts)
    expected = (np.log(proba) + off).argmax(axis=1)
    assert [r["prediction"] for r in predictor.predict(texts)] == [predictor.labels[i] for i in expected]
    metrics = json.loads(cli("evaluate", run, "--data", val_csv, "--json").out)
    assert metrics["decision_offsets"] == saved["offsets"]
    assert metrics["macro_f1"] == pytest.approx(saved["in_sample"]["macro_f1_after"])
    out = tmp_path / "pred.csv"
    assert cli("predict", run, "--input", val_csv, "--output", out).code == 0
    scored = pd.read_csv(out)
    kept = scored[scored["label"].notna()].head(20)
    probs = kept[["p_negative", "p_neutral", "p_positive"]].to_numpy()
    assert kept["label"].tolist() == [predictor.labels[i] for i in (np.log(probs) + off).argmax(axis=1)]
    # A new temperature makes the old offsets stale: calibrate drops them, a tampered run refuses.
    assert cli("calibrate", run, "--data", val_csv).code == 0 and not (run / "decision.json").exists()
    (run / "decision.json").write_text(json.dumps({**saved, "fitted_on_temperature": 9.0}))
    with pytest.raises(RunError, match="refit it"):
        Predictor(run)


def test_calibrating_on_the_training_file_is_refused(cli, svm_run: Path, train_csv: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("calibrate", svm_run, "--data", train_csv, "--objective", "macro_f1").one_line_error(
        "is the run's train file"
    )
