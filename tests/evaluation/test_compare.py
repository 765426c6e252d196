"""`medsent compare` on real runs: the table, the deltas, the files, and what it refuses."""

import csv
import json
import shutil
from pathlib import Path

import pytest


def test_compare_writes_table_plots_and_report(
    cli, svm_run: Path, textcnn_run: Path, val_csv: Path, tmp_path: Path
) -> None:
    out = tmp_path / "cmp"
    res = cli("compare", svm_run, textcnn_run, "--data", val_csv, "--out", out)
    assert res.code == 0 and "| svm |" in res.out
    rows = list(csv.DictReader((out / "comparison.csv").open()))
    assert [r["run"] for r in rows] == ["svm", "textcnn"]
    assert float(rows[0]["d_macro_f1"]) == 0.0
    assert float(rows[1]["d_macro_f1"]) == pytest.approx(
        float(rows[1]["macro_f1"]) - float(rows[0]["macro_f1"])
    )
    for row in rows:
        assert float(row["ms_per_review"]) > 0 and int(row["params"]) > 0
    summary = json.loads((out / "comparison.json").read_text())
    evaluated = cli("evaluate", textcnn_run, "--data", val_csv, "--json")
    assert summary["runs"]["textcnn"]["macro_f1"] == pytest.approx(json.loads(evaluated.out)["macro_f1"])
    analysis = summary["runs"]["svm"]["analysis"]
    assert sum(r["n"] for r in analysis["length"]) == summary["data"]["n"]
    assert analysis["confident_mistakes"]
    for name in ("comparison.png", "threshold_sweep.png", "confusion_svm.png", "confusion_textcnn.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 4 and "<script" not in html and "http" not in html
    # The most confident mistakes come with their words shaded by the run's own explanation method.
    assert (
        "with the words behind the wrong answer" in html and html.count('<span style="background:rgba(') > 10
    )
    mistakes = summary["runs"]["textcnn"]["analysis"]["confident_mistakes"]
    assert mistakes[0]["top_words"] and all(w in mistakes[0]["text"] for w in mistakes[0]["top_words"])
    res = cli("compare", svm_run, textcnn_run, "--data", val_csv, "--out", out, "--baseline", "textcnn")
    rows = list(csv.DictReader((out / "comparison.csv").open()))
    assert res.code == 0 and float(rows[1]["d_macro_f1"]) == 0.0


def test_compare_refuses_mixed_label_maps_and_training_data(
    cli, svm_run: Path, train_csv: Path, val_csv: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    shutil.copytree(svm_run, other)
    cfg = json.loads((other / "config.json").read_text())
    cfg["data"]["rating"]["negative_max"] = 1
    (other / "config.json").write_text(json.dumps(cfg))
    res = cli("compare", svm_run, other, "--data", val_csv, "--out", tmp_path / "c")
    assert res.one_line_error("different label maps")
    res = cli("compare", svm_run, "--data", train_csv, "--out", tmp_path / "c")
    assert res.one_line_error("trained on this very file")
    res = cli("compare", svm_run, "--data", val_csv, "--out", tmp_path / "c", "--baseline", "nope")
    assert res.one_line_error("--baseline 'nope' is not one of the runs")
