"""Training logs through Lightning's loggers: CSV by default, TensorBoard and MLflow on request."""

import csv
import json
import struct
from pathlib import Path

import pytest

from medsent.inference.predict import Predictor

TINY = [
    "--model", "textcnn", "--preset", "webmd", "--test-frac", "0", "--max-epochs", "2",
    "--set", "textcnn.embed_dim=16", "--set", "textcnn.num_filters=4", "--set", "trainer.progress_bar=false",
    "--set", "trainer.num_threads=1",
]  # fmt: skip


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _history(run: Path) -> list[dict[str, str]]:
    return _rows(run / "history.csv")


def test_csv_logs_are_in_the_run_folder_by_default(
    cli, train_csv: Path, val_csv: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    run = tmp_path / "run"
    res = cli("train", "--data", train_csv, "--val-data", val_csv, "--out", run, *TINY)
    assert res.code == 0, res.err
    rows = _rows(run / "logs" / "csv" / "metrics.csv")
    per_epoch = [r for r in rows if r.get("val_macro_f1")]
    history = _history(run)
    assert [float(r["val_macro_f1"]) for r in per_epoch] == pytest.approx(
        [float(h["val_macro_f1"]) for h in history]
    )
    final = [r for r in rows if r.get("final_val_macro_f1")]
    metrics = json.loads((run / "metrics.json").read_text())
    assert len(final) == 1 and float(final[0]["final_val_macro_f1"]) == pytest.approx(
        metrics["val"]["macro_f1"]
    )
    assert metrics["tracking"]["loggers"] == ["CSVLogger"]
    assert (run / "logs" / "csv" / "hparams.yaml").is_file()
    assert (run / "history.csv").is_file() and (run / "curves.png").is_file()  # they stay


def test_svm_runs_log_their_params_and_final_metrics(svm_run: Path) -> None:
    rows = _rows(svm_run / "logs" / "csv" / "metrics.csv")
    metrics = json.loads((svm_run / "metrics.json").read_text())
    assert float(rows[-1]["final_val_macro_f1"]) == pytest.approx(metrics["val"]["macro_f1"])
    assert "svm" in (svm_run / "logs" / "csv" / "hparams.yaml").read_text()


def _event_tags(folder: Path) -> set[str]:
    """Scalar tags in TensorBoard event files (TFRecord framing, Event protos)."""
    from tensorboardX.proto.event_pb2 import Event

    tags: set[str] = set()
    for path in folder.glob("events.out.tfevents.*"):
        data = path.read_bytes()
        at = 0
        while at + 12 <= len(data):
            (length,) = struct.unpack("<Q", data[at : at + 8])
            event = Event.FromString(data[at + 12 : at + 12 + length])
            at += 12 + length + 4
            tags.update(v.tag for v in event.summary.value)
    return tags


def test_tensorboard_event_files_in_the_run_folder(
    cli, train_csv: Path, val_csv: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    run = tmp_path / "run"
    res = cli(
        "train", "--data", train_csv, "--val-data", val_csv, "--out", run, "--logger", "tensorboard", *TINY
    )
    assert res.code == 0, res.err
    folder = run / "logs" / "tensorboard"
    assert {"val_macro_f1", "train_loss", "final_val_macro_f1"} <= _event_tags(folder)
    assert not (run / "logs" / "csv").exists()
    assert Predictor(run).predict_proba(["works well"]).shape == (1, 3)  # event files do not block loading


def test_mlflow_gets_params_epoch_metrics_final_metrics_and_the_run(
    cli, train_csv: Path, val_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    import mlflow

    store = tmp_path / "mlruns"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"file:{store}")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps the file store opt-in
    run = tmp_path / "run"
    res = cli("train", "--data", train_csv, "--val-data", val_csv, "--out", run, "--logger", "mlflow",
              "--set", "tracking.experiment=tests", *TINY)  # fmt: skip
    assert res.code == 0, res.err
    info = json.loads((run / "metrics.json").read_text())
    client = mlflow.MlflowClient(f"file:{store}")
    got = client.get_run(info["tracking"]["mlflow_run_id"])
    assert got.info.status == "FINISHED" and got.info.run_name == "run"
    assert client.get_experiment(got.info.experiment_id).name == "tests"
    assert got.data.params["model"] == "textcnn" and got.data.params["trainer/max_epochs"] == "2"
    history = [float(h["val_macro_f1"]) for h in _history(run)]
    logged = [
        m.value
        for m in sorted(client.get_metric_history(got.info.run_id, "val_macro_f1"), key=lambda m: m.step)
    ]
    assert logged == pytest.approx(history)
    assert got.data.metrics["final_val_macro_f1"] == pytest.approx(info["val"]["macro_f1"])
    artifacts = {a.path for a in client.list_artifacts(got.info.run_id, "run")}
    assert {"run/config.json", "run/metrics.json", "run/model"} <= artifacts


def test_logger_choice_errors_and_none(cli, train_csv: Path, val_csv: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    res = cli("train", "--data", train_csv, "--out", tmp_path / "x", "--logger", "wandb", *TINY)
    assert res.one_line_error("unknown logger 'wandb'; known: csv, tensorboard, mlflow")
    run = tmp_path / "quiet"
    assert cli("train", "--model", "svm", "--data", train_csv, "--val-data", val_csv, "--preset", "webmd",
               "--out", run, "--logger", "none").code == 0  # fmt: skip
    assert not (run / "logs").exists() and "tracking" not in json.loads((run / "metrics.json").read_text())


def test_an_unreachable_tracking_server_is_one_line(
    cli, train_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # discard port: nothing listens
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    res = cli("train", "--model", "svm", "--data", train_csv, "--preset", "webmd", "--out", tmp_path / "r",
              "--logger", "mlflow")  # fmt: skip
    assert res.one_line_error("cannot start the mlflow logger"), res.err
    assert not (tmp_path / "r").exists()
