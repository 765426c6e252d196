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
