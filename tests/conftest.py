"""Shared fixtures: small real slices of ../shared/data, written to temporary files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
WEBMD_POOL = DATA / "webmd" / "webmd_reviews.csv"
WEBMD_VAL = DATA / "webmd" / "webmd_val.csv"
ASKAPATIENT = DATA / "askapatient" / "askapatient_reviews.csv"


def _slice(src: Path, rows: int, seed: int) -> pd.DataFrame:
    frame = pd.read_csv(src, dtype=str, keep_default_na=False, na_values=[""])
    frame = frame[frame["review"].fillna("").str.split().str.len() >= 3]
    return frame.sample(n=min(rows, len(frame)), random_state=seed).reset_index(drop=True)


@pytest.fixture(scope="session")
def webmd_train_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """600 real WebMD pool reviews (raw columns, satisfaction 1-5)."""
    path = tmp_path_factory.mktemp("data") / "webmd_train.csv"
    _slice(WEBMD_POOL, 600, seed=1).to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def webmd_val_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 real reviews of the study's validation sample."""
    path = tmp_path_factory.mktemp("data") / "webmd_val.csv"
    _slice(WEBMD_VAL, 200, seed=2).to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def svm_run(tmp_path_factory: pytest.TempPathFactory, webmd_train_csv: Path, webmd_val_csv: Path) -> Path:
    """One trained SVM run folder shared by the read-only tests."""
    from medsent.config import build_config
    from medsent.data.presets import preset_layer
    from medsent.train import train_run

    out = tmp_path_factory.mktemp("runs") / "svm"
    cfg = build_config({"model": "svm", "data": preset_layer("webmd"), "split": {"test_frac": 0.2}})
    train_run(cfg, webmd_train_csv, out, val_path=webmd_val_csv)
    return out


# Tiny widths, 2 epochs, one thread: behaviour, not accuracy, is under test.
TINY_TEXTCNN = {
    "model": "textcnn",
    "textcnn": {"embed_dim": 24, "num_filters": 8},
    "trainer": {"max_epochs": 2, "progress_bar": False, "num_threads": 1},
}


@pytest.fixture(scope="session")
def textcnn_run(tmp_path_factory: pytest.TempPathFactory, webmd_train_csv: Path, webmd_val_csv: Path) -> Path:
    """One tiny trained TextCNN run folder shared by the read-only tests."""
    from medsent.config import build_config
    from medsent.data.presets import preset_layer
    from medsent.train import train_run

    out = tmp_path_factory.mktemp("runs") / "textcnn"
    cfg = build_config({**TINY_TEXTCNN, "data": preset_layer("webmd"), "split": {"test_frac": 0}})
    train_run(cfg, webmd_train_csv, out, val_path=webmd_val_csv)
    return out


class CliResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def one_line_error(self, fragment: str) -> bool:
        lines = [ln for ln in self.err.strip().splitlines() if not ln.startswith(("INFO", "WARNING"))]
        return self.code == 2 and len(lines) == 1 and fragment in lines[0] and "Traceback" not in self.err


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """Run `medsent ARGS...` through the real entry point; returns exit code, stdout and stderr."""
    from medsent.cli import main

    def call(*argv: str) -> CliResult:
        with pytest.raises(SystemExit) as exc:
            main([str(a) for a in argv])
        out, err = capsys.readouterr()
        code = exc.value.code if isinstance(exc.value.code, int) else 0
        return CliResult(code, out, err)

    return call
