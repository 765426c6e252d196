"""Ensembles: saved as a run, read back by predict/evaluate, members combined as documented."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from medsent.core.errors import RunError
from medsent.inference.ensemble import vote
from medsent.inference.predict import Predictor
from medsent.training.combine import fit_weights

TEXTS = ["No side effects and my pain is gone.", "Made me dizzy, stopped after a week.", "It is okay."]


def test_vote_rules() -> None:
    a = np.array([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    b = np.array([[0.1, 0.5, 0.4], [0.1, 0.1, 0.8]])
    soft = vote([a, b], np.array([0.5, 0.5]), "soft")
    assert np.allclose(soft, (a + b) / 2)
    hard = vote([a, b, b], np.ones(3) / 3, "hard")
    assert hard.argmax(1).tolist() == [1, 2] and np.allclose(hard.sum(1), 1)
    tie = vote([a, b], np.array([0.5, 0.5]), "hard")  # 1 vote each in row 0: higher mean probability wins
    assert tie[0].argmax() == 1


def test_fitted_weights_prefer_the_better_member() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 500)
    good = np.full((500, 3), 0.1)
    good[np.arange(500), y] = 0.8
    noise = rng.dirichlet(np.ones(3), 500)
    w = fit_weights([noise, good], y)
    assert w[1] > 0.9 and w.sum() == pytest.approx(1.0)


def test_ensemble_is_a_run_that_predict_and_evaluate_accept(
    cli, svm_run: Path, textcnn_run: Path, val_csv: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ens"
    res = cli("ensemble", svm_run, textcnn_run, "--out", out, "--fit-weights", val_csv)
    assert res.code == 0 and "validation macro-F1" in res.out
    spec = json.loads((out / "ensemble.json").read_text())
    assert spec["method"] == "soft" and sum(spec["weights"]) == pytest.approx(1.0)
    # Self-contained: the members are copied in, so the originals can go away.
    moved = tmp_path / "moved"
    shutil.copytree(out, moved)
    ens = Predictor(moved)
    members = [Predictor(svm_run).predict_proba(TEXTS), Predictor(textcnn_run).predict_proba(TEXTS)]
    expected = np.tensordot(np.asarray(spec["weights"]), np.stack(members), axes=1)
    assert np.allclose(ens.predict_proba(TEXTS), expected, atol=1e-6)
    res = cli("predict", moved, "--text", TEXTS[0])
    row = json.loads(res.out.strip().splitlines()[0])
    assert res.code == 0 and row["tier"] in ("auto", "review", "manual")
    assert sum(row["probabilities"].values()) == pytest.approx(1.0)
    res = cli("evaluate", moved, "--data", val_csv, "--json")
    assert res.code == 0 and 0 <= json.loads(res.out)["macro_f1"] <= 1
    scored = tmp_path / "scored.csv"
    res = cli("predict", moved, "--input", val_csv, "--output", scored)
    assert res.code == 0 and "wrote" in res.out
    import pandas as pd

    frame = pd.read_csv(scored)
    assert {"label", "confidence", "tier", "p_neutral", "drug"} <= set(frame.columns)
    res = cli("calibrate", moved, "--data", val_csv)
    assert res.code == 0 and (moved / "calibration.json").exists()

    hard = tmp_path / "hard"
    assert cli("ensemble", svm_run, textcnn_run, "--out", hard, "--method", "hard").code == 0
    proba = Predictor(hard).predict_proba(TEXTS)
    assert np.allclose(proba.sum(1), 1)


def test_ensemble_refuses_mixed_tasks_and_bad_folders(
    cli, svm_run: Path, textcnn_run: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other-map"
    shutil.copytree(svm_run, other)
    cfg = json.loads((other / "config.json").read_text())
    cfg["data"]["rating"]["positive_min"] = 5
    (other / "config.json").write_text(json.dumps(cfg))
    res = cli("ensemble", svm_run, other, "--out", tmp_path / "e1")
    assert res.one_line_error("different label maps")
    assert not (tmp_path / "e1").exists()
    assert cli("ensemble", svm_run, "--out", tmp_path / "e2").one_line_error("at least two runs")
    assert cli(
        "ensemble", svm_run, textcnn_run, "--out", tmp_path / "e3", "--method", "median"
    ).one_line_error("unknown ensemble method")
    assert cli("ensemble", svm_run, textcnn_run, "--out", tmp_path / "e4", "--weights", "1").one_line_error(
        "--weights needs 2"
    )
    good = tmp_path / "good"
    assert cli("ensemble", svm_run, textcnn_run, "--out", good).code == 0
    spec = json.loads((good / "ensemble.json").read_text())
    spec["members"][0] = "../../somewhere"
    (good / "ensemble.json").write_text(json.dumps(spec))
    with pytest.raises(RunError, match="leaves the run folder"):
        Predictor(good)


def test_a_permuted_label_map_is_realigned(svm_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "perm"
    shutil.copytree(svm_run, run)
    base = Predictor(svm_run).predict_proba(TEXTS)
    (run / "labels.json").write_text(json.dumps({"labels": ["Positive", "Negative", "Neutral"]}))
    # The model's column 0 now means Positive: our Positive column must be its column 0.
    assert np.allclose(Predictor(run).predict_proba(TEXTS), base[:, [1, 2, 0]])
    (run / "labels.json").write_text(json.dumps({"labels": ["bad", "good", "meh"]}))
    with pytest.raises(RunError, match="not a permutation"):
        Predictor(run)
