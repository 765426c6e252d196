"""The training engine end to end on small real slices (tiny models, a few epochs)."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from medsent.interfaces.cli import main
from medsent.training.train import work_dir_for

TINY = [
    "--set", "textcnn.embed_dim=24", "--set", "textcnn.num_filters=8",
    "--set", "bilstm.embed_dim=16", "--set", "bilstm.hidden_dim=12", "--set", "bilstm.fc_dim=8",
    "--set", "trainer.progress_bar=false", "--set", "trainer.patience=10", "--set", "trainer.num_threads=1",
]  # fmt: skip


def _train(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(["train", *TINY, *argv])
    out, err = capsys.readouterr()
    return (exc.value.code if isinstance(exc.value.code, int) else 0), out, err


def _history(run: Path) -> list[dict[str, str]]:
    with (run / "history.csv").open() as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("model", ["textcnn", "bilstm"])
def test_best_epoch_weights_are_restored_and_every_epoch_is_logged(
    model: str, capsys: pytest.CaptureFixture[str], train_csv: Path, val_csv: Path, tmp_path: Path
) -> None:
    run = tmp_path / model
    code, out, err = _train(
        capsys, "--model", model, "--data", str(train_csv), "--val-data", str(val_csv),
        "--preset", "webmd", "--test-frac", "0", "--max-epochs", "3", "--out", str(run),
    )  # fmt: skip
    assert code == 0, err
    metrics = json.loads((run / "metrics.json").read_text())
    history = _history(run)
    assert metrics["epochs_run"] == len(history) == 3
    best = max(history, key=lambda h: float(h["val_macro_f1"]))
    assert metrics["best_epoch"] == int(best["epoch"])
    # The saved model is the best epoch's: re-scoring it reproduces that epoch's validation macro-F1.
    assert metrics["val"]["macro_f1"] == pytest.approx(float(best["val_macro_f1"]), abs=1e-6)
    for field in ("train_loss", "val_loss", "val_kappa", "val_f1_neutral", "gap_acc", "lr", "grad_norm_max",
                  "train_loss_var", "train_samples_per_s"):  # fmt: skip
        assert history[0][field] != "", field
    assert float(history[0]["grad_norm_mean"]) > 0
    for name in ("curves.png", "lr_schedule.png", "model/model.safetensors", "model/tokenizer.json"):
        assert (run / name).is_file(), name
    assert not work_dir_for(run).exists()  # checkpoints are cleaned up once the run is committed
    assert "best epoch" in out


def test_patience_runs_out(
    capsys: pytest.CaptureFixture[str], train_csv: Path, val_csv: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    # min_delta 1.0: no epoch after the first counts as an improvement, so patience 1 runs out at
    # epoch 2, inside the first warm-restart cycle (t0 = 3).
    code, _, err = _train(
        capsys, "--model", "textcnn", "--data", str(train_csv), "--val-data", str(val_csv), "--preset", "webmd",
        "--test-frac", "0", "--max-epochs", "6", "--out", str(run), "--set", "scheduler.t0=3",
        "--set", "trainer.patience=1", "--set", "trainer.min_delta=1.0",
    )  # fmt: skip
    assert code == 0, err
    metrics = json.loads((run / "metrics.json").read_text())
    assert len(_history(run)) == metrics["epochs_run"] == 2
    assert metrics["stopped_early"]


def test_v1_preset_and_bf16_on_cpu(
    capsys: pytest.CaptureFixture[str], train_csv: Path, val_csv: Path, tmp_path: Path
) -> None:
    run = tmp_path / "v1"
    code, _, err = _train(
        capsys, "--model", "textcnn", "--preset-config", "v1", "--precision", "bf16", "--data", str(train_csv),
        "--val-data", str(val_csv), "--preset", "webmd", "--test-frac", "0", "--max-epochs", "1",
        "--out", str(run),
    )  # fmt: skip
    assert code == 0, err
    cfg = json.loads((run / "config.json").read_text())
    assert (
        cfg["loss"]["name"] == "ce"
        and cfg["scheduler"]["name"] == "constant"
        and not cfg["textcnn"]["batch_norm"]
    )
    assert json.loads((run / "metrics.json").read_text())["precision"] == "bf16-mixed"


def test_diverging_loss_stops_with_a_clear_message(
    capsys: pytest.CaptureFixture[str], train_csv: Path, val_csv: Path, tmp_path: Path
) -> None:
    run = tmp_path / "nan"
    code, _, err = _train(
        capsys, "--model", "textcnn", "--data", str(train_csv), "--val-data", str(val_csv),
        "--preset", "webmd", "--max-epochs", "2", "--out", str(run), "--set", "optim.lr=1e30",
        "--set", "trainer.grad_clip=null",
    )  # fmt: skip
    assert code == 1
    assert "loss became" in err and "checkpoint" in err and "Traceback" not in err
    assert not run.exists() and work_dir_for(run).exists()


@pytest.mark.parametrize(
    "setting, fragment",
    [
        ("bilstm.embed_dropout=-0.1", "bilstm.embed_dropout"),
        ("trainer.patience=0", "trainer.patience"),
        ("trainer.checkpoint_minutes=0", "trainer.checkpoint_minutes"),
        ("loss.smoothing=1.0", "loss.smoothing"),
        ("loss.name=hinge", "unknown loss 'hinge'"),
        ("scheduler.name=step", "unknown scheduler 'step'"),
    ],
)
def test_impossible_settings_fail_before_training(
    setting: str, fragment: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = _train(capsys, "--model", "bilstm", "--data", "never-read.csv", "--set", setting)
    assert code == 2 and fragment in err and "never-read" not in err


def _cli(*argv: str) -> list[str]:
    return [sys.executable, "-m", "medsent.interfaces.cli", "train", *argv, *TINY]


@pytest.mark.slow
def test_kill_9_then_resume_matches_an_uninterrupted_run(
    kill_9, train_csv: Path, val_csv: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    common = [
        "--model", "textcnn", "--data", str(train_csv), "--val-data", str(val_csv), "--preset", "webmd",
        "--test-frac", "0", "--max-epochs", "5", "--seed", "11", "--set", "trainer.num_threads=1",
    ]  # fmt: skip
    full = tmp_path / "full"
    subprocess.run(_cli(*common, "--out", str(full)), check=True, capture_output=True, timeout=300)
    killed = tmp_path / "killed"
    kill_9(["train", *common, "--out", str(killed), *TINY], kill_9.after_epochs(killed))
    assert not killed.exists() and (work_dir_for(killed) / "checkpoints" / "last.ckpt").exists()
    resumed = kill_9.run("train", "--resume", str(killed))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a = json.loads((full / "metrics.json").read_text())
    b = json.loads((killed / "metrics.json").read_text())
    assert b["epochs_run"] == a["epochs_run"]
    assert b["best_val_macro_f1"] == pytest.approx(a["best_val_macro_f1"], abs=1e-9)
    assert b["val"]["macro_f1"] == pytest.approx(a["val"]["macro_f1"], abs=1e-9)
    # The killed attempt's half-written run folder is gone; its CSV log continues without gaps.
    assert not list(tmp_path.glob(".killed.partial-*")) and not list(tmp_path.glob(".full.partial-*"))

    def epochs(run: Path) -> list[tuple[int, float]]:
        rows = list(csv.DictReader((run / "logs" / "csv" / "metrics.csv").open()))
        return [(int(float(r["epoch"])), float(r["val_macro_f1"])) for r in rows if r["val_macro_f1"]]

    got, want = epochs(killed), epochs(full)
    assert [e for e, _ in got] == [e for e, _ in want] and len(want) == a["epochs_run"]
    assert [f for _, f in got] == pytest.approx([f for _, f in want], abs=1e-9)


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_gathers_metrics_from_both(
    train_csv: Path, val_csv: Path, tmp_path: Path
) -> None:
    run = tmp_path / "ddp"
    proc = subprocess.run(
        _cli("--model", "textcnn", "--data", str(train_csv), "--val-data", str(val_csv),
             "--preset", "webmd", "--test-frac", "0", "--max-epochs", "1", "--accelerator", "cpu",
             "--devices", "2", "--set", "trainer.num_threads=1", "--out", str(run)),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads((run / "metrics.json").read_text())
    history = _history(run)
    assert metrics["devices"] == 2
    # Each rank validated about half of the reviews; the synced count is all of them.
    assert int(float(history[0]["val_n"])) == metrics["val"]["n"]


def test_transformer_source_errors_are_one_line_before_training(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = _train(
        capsys, "--model", "bert", "--data", "never-read.csv", "--pretrained", str(tmp_path)
    )
    assert code == 2 and "not a Hugging Face model folder" in err
    code, _, err = _train(
        capsys, "--model", "bert", "--data", "never-read.csv", "--pretrained", "org/some-model"
    )
    assert code == 2 and "hub is off" in err
    code, _, err = _train(
        capsys, "--model", "bert", "--data", "x.csv", "--set", "transformer.freeze_layers=7"
    )
    assert code == 2 and "freeze_layers=7" in err


@pytest.mark.slow
def test_kill_9_inside_an_epoch_then_resume_matches_an_uninterrupted_run(
    kill_9, train_csv: Path, val_csv: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Timed checkpoints (here every ~20 ms) land between the optimizer steps of an epoch; a run
    killed after one resumes at the next batch of that epoch and ends where an uninterrupted run
    ends."""
    import torch

    common = [
        "--model", "textcnn", "--data", str(train_csv), "--val-data", str(val_csv), "--preset", "webmd",
        "--test-frac", "0", "--max-epochs", "3", "--seed", "5", "--set", "trainer.batch_size=8",
        "--set", "trainer.checkpoint_minutes=0.0003",
    ]  # fmt: skip
    full = tmp_path / "full"
    subprocess.run(_cli(*common, "--out", str(full)), check=True, capture_output=True, timeout=300)
    killed = tmp_path / "killed"
    work = work_dir_for(killed)
    last, history = work / "checkpoints" / "last.ckpt", work / "history.csv"
    # The history row of epoch 1 is written before its checkpoint: a last.ckpt without it is timed.
    kill_9(["train", *common, "--out", str(killed), *TINY], lambda: last.exists() and not history.exists())
    state = torch.load(last, map_location="cpu", weights_only=False)
    (position,) = state["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    resumed = kill_9.run("train", "--resume", str(killed))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a = json.loads((full / "metrics.json").read_text())
    b = json.loads((killed / "metrics.json").read_text())
    assert (
        b["global_step"] == a["global_step"] == a["planned_steps"] and b["epochs_run"] == a["epochs_run"] == 3
    )
    assert position["epoch"] == 0 and 0 < position["batches_done"] < a["global_step"] / 3  # in epoch 1
    assert b["best_val_macro_f1"] == pytest.approx(a["best_val_macro_f1"], abs=1e-9)
    assert b["val"]["macro_f1"] == pytest.approx(a["val"]["macro_f1"], abs=1e-9)
    assert b["val"]["ece"] == pytest.approx(a["val"]["ece"], abs=1e-9)


def test_auto_precision_uses_bf16_only_where_the_cpu_has_it() -> None:
    import warnings

    from medsent.training.fit import cpu_has_bf16, resolve_precision

    assert resolve_precision("auto", "cpu") == ("bf16-mixed" if cpu_has_bf16() else "32-true")
    assert resolve_precision("32", "cpu") == "32-true"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert resolve_precision("bf16", "cpu") == "bf16-mixed"  # asked for: honoured
    assert any("emulated" in str(w.message) for w in caught) != cpu_has_bf16()


def test_planned_steps_follow_lightnings_count() -> None:
    from medsent.core.config import TrainerConfig
    from medsent.training.fit import stepping_batches

    tc = TrainerConfig(max_epochs=3, accumulate=2)
    assert stepping_batches(75, tc) == 38 * 3
    assert stepping_batches(75, TrainerConfig(max_epochs=2, limit_train_batches=4)) == 8
    assert stepping_batches(75, TrainerConfig(max_epochs=1, limit_train_batches=0.5)) == 37
