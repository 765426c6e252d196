"""Batch prediction at scale: parts then one rename, resume after kill -9, worker processes, Dask."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medsent.inference.batch import predict_file, score_frame
from medsent.inference.predict import Predictor


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory: pytest.TempPathFactory, train_csv: Path, val_csv: Path) -> Path:
    """3,000 reviews with an id column and a few blanks, from the fixture files repeated."""
    frame = pd.concat([pd.read_csv(train_csv), pd.read_csv(val_csv)])[["review", "drug"]]
    frame = pd.concat([frame] * 4, ignore_index=True).head(3000)
    frame.insert(0, "row_id", range(len(frame)))
    frame.loc[[5, 777], "review"] = ""
    path = tmp_path_factory.mktemp("batch") / "big.csv"
    frame.to_csv(path, index=False)
    return path


def _cmd(run: Path, src: Path, dst: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "medsent.interfaces.cli", "predict", str(run), "--input", str(src), "--output", str(dst),
            "--chunk-rows", "250", *extra]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_kill_9_then_resume_equals_an_uninterrupted_job(
    svm_run: Path, big_csv: Path, tmp_path: Path, suffix: str
) -> None:
    whole = tmp_path / f"whole{suffix}"
    subprocess.run(
        _cmd(svm_run, big_csv, whole, "--workers", "1"), check=True, capture_output=True, timeout=300
    )
    killed = tmp_path / f"killed{suffix}"
    parts = tmp_path / f".killed{suffix}.parts"
    proc = subprocess.Popen(
        _cmd(svm_run, big_csv, killed, "--workers", "1"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and len(list(parts.glob("part-*"))) < 3:
        time.sleep(0.02)
    assert proc.poll() is None, "the job finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not killed.exists()  # never a truncated file under the final name
    done_before = len(list(parts.glob("part-*")))
    resumed = subprocess.run(
        _cmd(svm_run, big_csv, killed, "--resume", "--workers", "1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert not parts.exists() and 3 <= done_before < 12
    if suffix == ".csv":
        assert killed.read_bytes() == whole.read_bytes()
    else:
        pd.testing.assert_frame_equal(pd.read_parquet(killed), pd.read_parquet(whole))


def test_worker_processes_give_the_single_process_output(
    svm_run: Path, big_csv: Path, tmp_path: Path
) -> None:
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    predictor = Predictor(svm_run)
    assert predict_file(predictor, big_csv, one, progress=False, workers=1, chunk_rows=500) == 3000
    assert predict_file(predictor, big_csv, two, progress=False, workers=2, chunk_rows=500) == 3000
    assert one.read_bytes() == two.read_bytes()
    scored = pd.read_csv(one)
    assert scored["row_id"].tolist() == list(range(3000))
    assert scored.loc[[5, 777], "label"].isna().all() and (scored.loc[[5, 777], "tier"] == "manual").all()


def test_resume_refuses_a_job_of_another_run_or_input(
    cli, svm_run: Path, textcnn_run: Path, big_csv: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    dst = tmp_path / "out.csv"
    parts = tmp_path / ".out.csv.parts"
    parts.mkdir()
    (parts / "job.json").write_text('{"run_id": "someone-else", "input": {}, "chunk_rows": 250}')
    (parts / "part-000000.csv").write_text("x\n")
    res = cli("predict", svm_run, "--input", big_csv, "--output", dst, "--resume", "--chunk-rows", "250")
    assert res.one_line_error("belongs to another run")
    assert (parts / "part-000000.csv").read_text() == "x\n" and not dst.exists()  # nothing damaged
    assert cli("predict", svm_run, "--input", big_csv, "--output", dst, "--workers", "zero").one_line_error(
        "--workers must be a positive number"
    )


def test_dask_engine_scores_shards_like_the_local_path(
    cli, svm_run: Path, big_csv: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    shards = tmp_path / "shards"
    shards.mkdir()
    frame = pd.read_csv(big_csv, dtype={"review": str}, keep_default_na=False)
    for i in range(4):
        frame.iloc[i * 500 : (i + 1) * 500].to_parquet(shards / f"s{i}.parquet", index=False)
    out = tmp_path / "out"
    res = cli(
        "predict",
        svm_run,
        "--input",
        f"{shards}/*.parquet",
        "--output",
        out,
        "--engine",
        "dask",
        "--workers",
        "2",
    )
    assert res.code == 0 and "4 part(s)" in res.out, res.err
    predictor = Predictor(svm_run)
    for i in range(4):
        got = pd.read_parquet(out / f"s{i}.parquet")
        want = score_frame(predictor, pd.read_parquet(shards / f"s{i}.parquet"), None)
        assert got["label"].tolist() == want["label"].tolist()
        assert np.allclose(got["p_neutral"].to_numpy(), want["p_neutral"].to_numpy(), equal_nan=True)
    again = cli("predict", svm_run, "--input", f"{shards}/*.parquet", "--output", out, "--engine", "dask")
    assert again.code == 0 and "4 already done" in again.out
    assert cli(
        "predict", svm_run, "--input", f"{tmp_path}/none/*.parquet", "--output", out, "--engine", "dask"
    ).one_line_error("no files match")
    pd.DataFrame({"body": ["x"]}).to_parquet(shards / "s9.parquet")
    assert cli(
        "predict", svm_run, "--input", f"{shards}/*.parquet", "--output", tmp_path / "o2", "--engine", "dask"
    ).one_line_error("s9.parquet: no text column")


def test_fast_paths_predict_what_the_plain_models_predict(
    svm_run: Path, textcnn_run: Path, big_csv: Path
) -> None:
    """The n-gram counters (SVM) and the lookup TextCNN give today's predictions on 3,000 reviews."""
    from medsent.data.clean import normalize_text
    from medsent.inference.neural import predict_logits, softmax, text_view

    texts = pd.read_csv(big_csv, keep_default_na=False)["review"].tolist()
    texts = [t for t in texts if t.strip()]
    svm = Predictor(svm_run)
    cleaned = [normalize_text(t, svm.config.clean) for t in texts]
    model = svm.model
    views = model.views(cleaned)
    import scipy.sparse as sp

    plain = sp.hstack([model.vectorizers[b].transform(views[b]) for b in views], format="csr")  # type: ignore[attr-defined]
    assert (plain != model.features(cleaned)).nnz == 0
    cnn = Predictor(textcnn_run, use_onnx=False)
    clf = cnn.model
    ids = clf.vocab.encode(text_view([normalize_text(t, cnn.config.clean) for t in texts], cnn.config))  # type: ignore[attr-defined]
    conv = softmax(predict_logits(clf.model, ids, cnn.config.vocab.buckets, 256))  # type: ignore[attr-defined]
    fast = cnn.predict_proba(texts)
    assert clf._fast  # type: ignore[attr-defined]  # the lookup form did the work
    assert (fast.argmax(axis=1) == conv.argmax(axis=1)).all() and np.abs(fast - conv).max() < 1e-5


@pytest.mark.skipif(__import__("platform").libc_ver()[0] != "glibc", reason="mallopt is glibc's")
@pytest.mark.parametrize("env, undone", [({"MALLOC_TRIM_THRESHOLD_": "65536"}, "True"), ({}, "False")])
def test_dask_workers_undo_the_nannys_malloc_trim(env: dict[str, str], undone: str) -> None:
    """A worker started with Dask's MALLOC_TRIM_THRESHOLD_ raises glibc's thresholds again; others
    are left alone."""
    clean = {k: v for k, v in os.environ.items() if k != "MALLOC_TRIM_THRESHOLD_"}
    code = "from medsent.inference.distributed import _undo_malloc_trim; print(_undo_malloc_trim())"
    out = subprocess.run(
        [sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == undone
