"""`medsent distill`: a word-model student trained on a teacher's cached probabilities."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medsent.distill import teacher_probabilities
from medsent.predict import Predictor
from medsent.training import work_dir_for

TINY = ["--max-epochs", "2", "--set", "textcnn.embed_dim=16", "--set", "textcnn.num_filters=4",
        "--set", "trainer.progress_bar=false", "--set", "trainer.num_threads=1"]  # fmt: skip


@pytest.fixture
def unlabeled_csv(train_csv: Path, val_csv: Path, tmp_path: Path) -> Path:
    """Reviews without labels: new ones, plus 6 validation reviews the leakage guard must drop."""
    frame = pd.read_csv(train_csv)
    texts = [f"{t} Update after a month: same." for t in frame["review"].head(120)]
    texts += pd.read_csv(val_csv)["review"].head(6).tolist()
    path = tmp_path / "unlabeled.csv"
    pd.DataFrame({"review": texts, "drug": "x"}).to_csv(path, index=False)
    return path


def test_student_trains_on_teacher_and_unlabelled_reviews(
    cli, svm_run: Path, train_csv: Path, val_csv: Path, unlabeled_csv: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    teacher = tmp_path / "teacher"
    shutil.copytree(svm_run, teacher)
    assert cli("calibrate", teacher, "--data", val_csv).code == 0  # distillation uses the calibration
    out = tmp_path / "student"
    res = cli("distill", teacher, "--student", "textcnn", "--data", train_csv, "--val-data", val_csv,
              "--unlabeled", unlabeled_csv, "--preset", "webmd", "--out", out, "--temperature", "3",
              "--alpha", "0.3", *TINY)  # fmt: skip
    assert res.code == 0, res.err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["teacher"]["run"] == str(teacher) and len(manifest["teacher"]["run_id"]) == 16
    assert manifest["teacher"]["temperature"] == pytest.approx(Predictor(teacher).temperature)
    assert manifest["distill_sources"]["unlabelled_reviews"] == 120
    assert manifest["leakage_removed"]["aux_in_val_or_test"] == 6
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"] == "textcnn" and cfg["distill"]["temperature"] == 3 and cfg["distill"]["alpha"] == 0.3
    student = Predictor(out)  # a normal run: predict, calibrate, export, evaluate
    assert student.kind.name == "textcnn"
    assert cli("calibrate", out, "--data", val_csv).code == 0
    assert cli("export", out).code == 0 and Predictor(out).backend.startswith("onnxruntime")
    assert json.loads(cli("evaluate", out, "--data", val_csv, "--json").out)["n"] > 0


def test_teacher_probabilities_are_cached_per_review(svm_run: Path, train_csv: Path, tmp_path: Path) -> None:
    teacher = Predictor(svm_run)
    texts = list(dict.fromkeys(pd.read_csv(train_csv)["review"].dropna().tolist()))[:50]
    folder = tmp_path / "cache"
    first = teacher_probabilities(teacher, texts, folder, batch_rows=16)
    chunks = sorted(folder.glob("*/chunk-*.npz"))
    assert len(chunks) == 4 and np.allclose(first, teacher.predict_proba(texts), atol=1e-6)
    chunks[-1].unlink()  # as if killed before the last chunk
    chunks[-2].write_bytes(chunks[-2].read_bytes()[:100])  # and one cut short
    stamp = chunks[0].stat().st_mtime_ns
    again = teacher_probabilities(teacher, texts, folder, batch_rows=16)
    assert np.allclose(first, again) and chunks[0].stat().st_mtime_ns == stamp  # not recomputed
    stored = [np.load(p)["keys"].shape[0] for p in folder.glob("*/chunk-*.npz")]
    assert sum(stored) == 50 and len(stored) == 4  # the broken chunk replaced, nothing stored twice
    # Another student (other row order, a subset, repeats) reuses every cached review.
    order = [49, 3, 3, 17, 0]
    before = sorted(p.name for p in folder.glob("*/chunk-*.npz"))
    reused = teacher_probabilities(teacher, [texts[i] for i in order], folder, batch_rows=16)
    assert (
        np.allclose(reused, first[order]) and sorted(p.name for p in folder.glob("*/chunk-*.npz")) == before
    )
    assert teacher_probabilities(teacher, [], folder, batch_rows=16).shape == (0, 3)


def test_bad_distillations_are_one_line_and_write_nothing(
    cli, svm_run: Path, textcnn_run: Path, train_csv: Path, val_csv: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "student"
    common = ["--data", train_csv, "--val-data", val_csv, "--preset", "webmd", "--out", out, *TINY]
    assert cli("distill", tmp_path / "nope", "--student", "textcnn", *common).one_line_error(
        "run folder not found"
    )
    assert cli("distill", svm_run, "--student", "svm", *common).one_line_error(
        "the student must be a word model"
    )
    assert cli("distill", svm_run, "--student", "transformer", *common).one_line_error("must be a word model")
    notext = tmp_path / "notext.csv"
    notext.write_text("body,stars\nfine,3\n")
    assert cli("distill", svm_run, "--student", "textcnn", "--unlabeled", notext, *common).one_line_error(
        "no text column"
    )
    res = cli(
        "distill", textcnn_run, "--student", "textcnn", *common[: -len(TINY)], "--preset", "drugscom", *TINY
    )
    assert res.one_line_error("label map")
    assert not out.exists() and not work_dir_for(out).exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".student.partial")]
