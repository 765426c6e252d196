"""`medsent cascade`: the fast run where it is confident, the slow run elsewhere."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medsent.inference.cascade import route
from medsent.inference.predict import Predictor
from medsent.training.combine import fit_threshold


def test_threshold_is_the_lowest_that_keeps_macro_f1_within_tolerance() -> None:
    rng = np.random.default_rng(0)
    y = rng.choice(3, size=600)
    slow = np.full((600, 3), 0.1)
    slow[np.arange(600), y] = 0.8  # always right
    fast = rng.dirichlet([1, 1, 1], size=600)
    confident = fast.max(axis=1) > 0.6
    fast[confident] = 0.05
    fast[np.flatnonzero(confident), y[confident]] = 0.9  # right wherever it is confident
    fitted = fit_threshold(fast, slow, y, tolerance=0.005)
    assert fitted["val_macro_f1_slow"] == pytest.approx(1.0)
    assert fitted["val_macro_f1_cascade"] >= 1.0 - 0.005
    assert 0.6 <= fitted["threshold"] <= 0.9 and fitted["val_share_fast"] == pytest.approx(
        confident.mean(), abs=0.02
    )
    lower = fitted["threshold"] - 0.02  # any lower threshold costs more than the tolerance
    pred = np.where(route(fast, lower)[:, None], slow, fast).argmax(axis=1)
    assert (pred == y).mean() < 1.0


def test_cascade_is_a_run_that_predicts_evaluates_and_reports_its_routing(
    cli, textcnn_run: Path, svm_run: Path, val_csv: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "casc"
    res = cli("cascade", textcnn_run, svm_run, "--data", val_csv, "--out", out, "--tolerance", "0.01")
    assert res.code == 0 and "fast run answers" in res.out, res.err
    spec = json.loads((out / "cascade.json").read_text())
    predictor = Predictor(out)
    assert predictor.kind.name == "cascade" and predictor.model_name == "cascade"
    texts = pd.read_csv(val_csv)["review"].dropna().tolist()[:60]
    proba = predictor.predict_proba(texts)
    fast, slow = Predictor(textcnn_run).predict_proba(texts), Predictor(svm_run).predict_proba(texts)
    to_slow = fast.max(axis=1) < spec["threshold"]
    assert np.allclose(proba, np.where(to_slow[:, None], slow, fast), atol=1e-9)
    stats = predictor.model.routing_stats()  # type: ignore[attr-defined]
    assert stats["rows"] == 60 and stats["rows_to_slow"] == int(to_slow.sum())
    metrics = json.loads(cli("evaluate", out, "--data", val_csv, "--json").out)
    assert metrics["share_to_slow"] == pytest.approx(spec["val_share_to_slow"], abs=1e-9)
    assert metrics["macro_f1"] == pytest.approx(spec["val_macro_f1_cascade"], abs=1e-9)
    assert cli("cascade", svm_run, svm_run, "--data", val_csv, "--out", tmp_path / "x").one_line_error(
        "two different runs"
    )
