"""`medsent distill`: a student trained on a teacher's cached probabilities."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medsent.core.config import RunConfig
from medsent.data.dataset import load_labeled_for
from medsent.inference.predict import Predictor
from medsent.training.distill import teacher_probabilities
from medsent.training.train import work_dir_for

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


def test_an_ensemble_run_is_a_teacher(
    cli, svm_run: Path, textcnn_run: Path, train_csv: Path, val_csv: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    ens = tmp_path / "ens"
    assert cli("ensemble", svm_run, textcnn_run, "--out", ens).code == 0
    cache = tmp_path / "cache"
    out = tmp_path / "student"
    res = cli("distill", ens, "--student", "textcnn", "--data", train_csv, "--val-data", val_csv,
              "--preset", "webmd", "--teacher-cache", cache, "--set", "split.test_frac=0", "--out", out,
              *TINY)  # fmt: skip
    assert res.code == 0, res.err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["teacher"]["run"] == str(ens)
    # What the student learnt from is the ensemble's combined answer, not one member's.
    cfg = RunConfig.model_validate(json.loads((out / "config.json").read_text()))
    texts = load_labeled_for(cfg, train_csv).frame["text"].head(40).tolist()  # as the student read them
    teacher = Predictor(ens)
    before = sorted(p.name for p in cache.glob("*/chunk-*.npz"))
    cached = teacher_probabilities(teacher, texts, cache, batch_rows=2048)
    assert sorted(p.name for p in cache.glob("*/chunk-*.npz")) == before  # read back, not computed anew
    assert np.allclose(cached, teacher.predict_proba(texts), atol=1e-5)
    assert not np.allclose(cached, Predictor(svm_run).predict_proba(texts), atol=1e-3)
    assert Predictor(out).kind.name == "textcnn"


def test_bad_distillations_are_one_line_and_write_nothing(
    cli, svm_run: Path, textcnn_run: Path, train_csv: Path, val_csv: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "student"
    common = ["--data", train_csv, "--val-data", val_csv, "--preset", "webmd", "--out", out, *TINY]
    assert cli("distill", tmp_path / "nope", "--student", "textcnn", *common).one_line_error(
        "run folder not found"
    )
    assert cli("distill", svm_run, "--student", "svm", *common).one_line_error(
        "the student must be trained by the neural engine (textcnn, bilstm, transformer)"
    )
    notext = tmp_path / "notext.csv"
    notext.write_text("body,stars\nfine,3\n")
    assert cli("distill", svm_run, "--student", "textcnn", "--unlabeled", notext, *common).one_line_error(
        "no text column"
    )
    res = cli(
        "distill", textcnn_run, "--student", "textcnn", *common[: -len(TINY)], "--preset", "drugscom", *TINY
    )
    assert res.one_line_error("label map")
    assert cli("distill", svm_run, "--student", "textcnn", "--alpha", "2", *common).one_line_error("alpha")
    assert cli("distill", svm_run, "--student", "textcnn", "--teacher-cache", notext, *common).one_line_error(
        "is a file; give a folder"
    )
    assert not out.exists() and not work_dir_for(out).exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".student.partial")]


def test_students_share_a_teacher_cache(
    cli, svm_run: Path, train_csv: Path, val_csv: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    cache = tmp_path / "cache"
    common = ["--student", "textcnn", "--data", train_csv, "--val-data", val_csv, "--preset", "webmd",
              "--teacher-cache", cache, "--set", "split.test_frac=0", *TINY]  # fmt: skip
    res = cli("distill", svm_run, *common, "--out", tmp_path / "a", "--seed", "3")
    assert res.code == 0, res.err
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    sources = manifest["distill_sources"]
    assert sources["unlabelled_reviews"] == 0
    cached = sum(np.load(p)["keys"].shape[0] for p in cache.glob("*/chunk-*.npz"))
    assert cached == sources["labelled_reviews"]
    # Another seed: every review is already cached, nothing is computed again.
    before = {p.name: p.stat().st_mtime_ns for p in cache.glob("*/chunk-*.npz")}
    assert cli("distill", svm_run, *common, "--out", tmp_path / "b", "--seed", "4").code == 0
    assert {p.name: p.stat().st_mtime_ns for p in cache.glob("*/chunk-*.npz")} == before


@pytest.mark.slow
def test_a_killed_distillation_resumes_with_its_cached_teacher(  # type: ignore[no-untyped-def]
    kill_9, train_csv: Path, val_csv: Path, svm_run: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    argv = ["distill", str(svm_run), "--student", "textcnn",
            "--data", str(train_csv), "--val-data", str(val_csv), "--preset", "webmd",
            "--teacher-cache", str(cache), "--max-epochs", "5", "--seed", "11",
            "--set", "trainer.num_threads=1", "--set", "trainer.progress_bar=false"]  # fmt: skip
    full = tmp_path / "full"
    assert kill_9.run(*argv, "--out", str(full)).returncode == 0
    chunks = {p.name: p.stat().st_mtime_ns for p in cache.glob("*/chunk-*.npz")}
    killed = tmp_path / "killed"
    kill_9([*argv, "--out", str(killed)], kill_9.after_epochs(killed))
    resumed = kill_9.run("train", "--resume", str(killed))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a = json.loads((full / "metrics.json").read_text())
    b = json.loads((killed / "metrics.json").read_text())
    assert b["epochs_run"] == a["epochs_run"]
    assert b["val"]["macro_f1"] == pytest.approx(a["val"]["macro_f1"], abs=1e-9)
    assert (
        json.loads((killed / "manifest.json").read_text())["distill_sources"]
        == json.loads((full / "manifest.json").read_text())["distill_sources"]
    )
    assert {p.name: p.stat().st_mtime_ns for p in cache.glob("*/chunk-*.npz")} == chunks  # reused


def test_a_minilm_student_learns_a_teachers_answers_from_the_frozen_prefix_cache(
    cli, transformer_run: Path, train_csv: Path, val_csv: Path, unlabeled_csv: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """An encoder student: the same engine, the frozen bottom computed once, a normal transformer run."""
    out = tmp_path / "student"
    tiny = ["--max-epochs", "1", "--set", "transformer.freeze_layers=5", "--set", "transformer.max_length=64",
            "--set", "trainer.batch_size=32", "--set", "trainer.limit_train_batches=4",
            "--set", "trainer.progress_bar=false", "--set", "split.test_frac=0"]  # fmt: skip
    res = cli("distill", transformer_run, "--student", "transformer", "--data", train_csv, "--val-data", val_csv,
              "--unlabeled", unlabeled_csv, "--preset", "webmd", "--out", out, "--temperature", "2", *tiny)  # fmt: skip
    assert res.code == 0, res.err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["teacher"]["kind"] == "transformer"
    assert manifest["distill_sources"]["unlabelled_reviews"] == 120
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["prefix_cache"]["layers"] == 5  # teacher-labelled rows go through the cache too
    student = Predictor(out)
    assert student.kind.name == "transformer" and student.model_name == "transformer"
    texts = pd.read_csv(val_csv)["review"].head(4).tolist()
    proba = student.predict_proba(texts)
    assert proba.shape == (4, 3) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    # The student is a new network, not the teacher's weights carried over.
    assert not np.allclose(proba, Predictor(transformer_run).predict_proba(texts), atol=1e-4)
