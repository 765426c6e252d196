"""Training logs through Lightning's loggers: CSV (default), TensorBoard and MLflow, chosen by name.

During a run the loggers write into the work folder beside it (``.RUN.work/logs/NAME``); the CSV
and TensorBoard files are copied into the run folder (``RUN/logs/NAME``) when it is committed. A
killed run resumed with ``--resume`` continues the same logs: the CSV rows of the epochs it replays
are replaced, and MLflow continues the same MLflow run. MLflow also receives the final metrics and
the committed run folder as an artifact; its tracking URI is ``MLFLOW_TRACKING_URI`` when set, else
a local ``mlruns/`` folder in the working directory.
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medsent.core.config import RunConfig
from medsent.core.errors import ConfigError
from medsent.core.runs import read_json, write_json

log = logging.getLogger(__name__)

LOG_DIR = "logs"
STATE_FILE = "tracking.json"


def _csv(cfg: RunConfig, root: Path, run_name: str, state: dict[str, Any]) -> Any:
    from lightning.pytorch.loggers import CSVLogger

    return CSVLogger(save_dir=str(root), name="csv", version="")


def _tensorboard(cfg: RunConfig, root: Path, run_name: str, state: dict[str, Any]) -> Any:
    from lightning.pytorch.loggers import TensorBoardLogger

    class RunTensorBoardLogger(TensorBoardLogger):
        """Stays open through the Trainer's teardown: the final metrics come after the fit, and a
        writer reopened within the same second would reuse (and clobber) the event file's name."""

        closing = False

        def save(self) -> None:
            super().save()
            if self._experiment is not None:
                self._experiment.flush()  # the run folder copies the file right after

        def finalize(self, status: str) -> None:
            if self.closing:
                super().finalize(status)
            elif self._experiment is not None:
                self._experiment.flush()

    try:
        return RunTensorBoardLogger(
            save_dir=str(root), name="tensorboard", version="", default_hp_metric=False
        )
    except ModuleNotFoundError:
        raise ConfigError(
            "--logger tensorboard needs tensorboardX (pip install 'medsent[tensorboard]')"
        ) from None


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else ``file:`` + ./mlruns (absolute, so later chdirs agree).

    MLflow 3 keeps its file store in maintenance mode and refuses it unless MLFLOW_ALLOW_FILE_STORE
    is set; the database stores need SQLAlchemy, which mlflow-skinny lacks. A user who set no URI
    gets the local folder, so the opt-out is set for them (and only then).
    """
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return f"file:{Path('mlruns').resolve()}"


def _mlflow(cfg: RunConfig, root: Path, run_name: str, state: dict[str, Any]) -> Any:
    try:
        import mlflow  # noqa: F401
        from lightning.pytorch.loggers import MLFlowLogger
    except ImportError:
        raise ConfigError("--logger mlflow needs mlflow-skinny (pip install 'medsent[mlflow]')") from None
    return MLFlowLogger(
        experiment_name=cfg.tracking.experiment,
        run_name=cfg.tracking.run_name or run_name,
        tracking_uri=tracking_uri(),
        run_id=state.get("mlflow_run_id"),  # a resumed run continues its MLflow run
        tags={"medsent.model": cfg.model},
    )


LOGGERS: dict[str, Callable[[RunConfig, Path, str, dict[str, Any]], Any]] = {
    "csv": _csv,
    "tensorboard": _tensorboard,
    "mlflow": _mlflow,
}


@dataclass
class Tracking:
    """The Lightning loggers of one run and where they write."""

    root: Path
    loggers: list[Any] = field(default_factory=list)

    def mlflow(self) -> Any:
        from lightning.pytorch.loggers import MLFlowLogger

        return next((lg for lg in self.loggers if isinstance(lg, MLFlowLogger)), None)


def start(cfg: RunConfig, work: Path, run_name: str, resume: bool) -> Tracking:
    """The configured loggers, writing under ``work/logs``; nothing is imported when there are none."""
    names = tuple(cfg.tracking.loggers)
    root = work / LOG_DIR
    if not names:
        return Tracking(root)
    root.mkdir(parents=True, exist_ok=True)
    state_path = work / STATE_FILE
    state: dict[str, Any] = read_json(state_path) if resume and state_path.exists() else {}
    csv_file = root / "csv" / "metrics.csv"
    if resume and csv_file.exists():  # CSVLogger deletes an existing metrics.csv: keep it to merge
        os.replace(csv_file, csv_file.with_name("metrics.before-resume.csv"))
    tracking = Tracking(root)
    params = cfg.model_dump(mode="json")
    for name in names:
        try:
            lg = LOGGERS[name](cfg, root, run_name, state)
            lg.log_hyperparams(params)
        except ConfigError:
            raise
        except Exception as exc:  # a tracking server that cannot be reached, a refused store...
            first = (str(exc) or type(exc).__name__).splitlines()[0][:300]
            raise ConfigError(f"cannot start the {name} logger: {first}") from None
        tracking.loggers.append(lg)
    ml = tracking.mlflow()
    if ml is not None:
        state["mlflow_run_id"] = ml.run_id
        write_json(state_path, state)
    return tracking


def merge_resumed_csv(root: Path) -> None:
    """Rows of the killed attempt before the first epoch the resumed one logged, then the new rows."""
    folder = root / "csv"
    before, now = folder / "metrics.before-resume.csv", folder / "metrics.csv"
    if not before.exists():
        return
    old, new = _rows(before), _rows(now)
    first = min((float(r["epoch"]) for r in new if r.get("epoch") not in (None, "")), default=float("inf"))
    kept = [r for r in old if r.get("epoch") not in (None, "") and float(r["epoch"]) < first]
    fields = list(dict.fromkeys([k for r in kept + new for k in r]))
    tmp = now.with_suffix(".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(kept + new)
    os.replace(tmp, now)
    before.unlink()


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def final_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The scalar figures of the scored splits, as ``final_val_macro_f1`` and so on."""
    out: dict[str, float] = {}
    for role in ("val", "test"):
        m = metrics.get(role) or {}
        for key in ("macro_f1", "weighted_f1", "accuracy", "kappa", "ece"):
            if isinstance(m.get(key), (int, float)):
                out[f"final_{role}_{key}"] = float(m[key])
        for name, per in (m.get("per_class") or {}).items():
            if isinstance(per, dict) and isinstance(per.get("f1"), (int, float)):
                out[f"final_{role}_f1_{name.lower()}"] = float(per["f1"])
    if isinstance(metrics.get("fit_seconds"), (int, float)):
        out["fit_seconds"] = float(metrics["fit_seconds"])
    return out


def log_final(tracking: Tracking, metrics: dict[str, Any]) -> None:
    figures = final_metrics(metrics)
    step = int(metrics.get("global_step") or 0)
    for lg in tracking.loggers:
        lg.log_metrics(figures, step=step)
        lg.save()


def _close(lg: Any, status: str) -> None:
    lg.closing = True
    lg.finalize(status)
    lg.closed = True


def copy_logs(tracking: Tracking, run_folder: Path) -> None:
    """CSV and TensorBoard files into ``run_folder/logs`` (MLflow keeps its own store).

    Their loggers are closed first: tensorboardX writes events from a background queue that only
    ``close`` drains, so a copy taken after a mere flush can miss the last ones.
    """
    ml = tracking.mlflow()
    for lg in tracking.loggers:
        if lg is not ml:
            _close(lg, "success")
    merge_resumed_csv(tracking.root)
    for name in ("csv", "tensorboard"):
        src = tracking.root / name
        if src.is_dir() and any(src.iterdir()):
            shutil.copytree(src, run_folder / LOG_DIR / name, dirs_exist_ok=True)


def describe(tracking: Tracking) -> dict[str, Any]:
    """What the run folder records about its logs (metrics.json ``tracking``)."""
    info: dict[str, Any] = {"loggers": [type(lg).__name__ for lg in tracking.loggers]}
    ml = tracking.mlflow()
    if ml is not None:
        info.update(mlflow_run_id=ml.run_id, mlflow_tracking_uri=tracking_uri())
    return info


def finish(tracking: Tracking, run_dir: Path) -> None:
    """After the run folder is committed: MLflow gets it as an artifact; every logger is closed.

    The run is already safe on disk, so a tracking server that fails here costs a warning, not the run.
    """
    ml = tracking.mlflow()
    try:
        if ml is not None:
            ml.experiment.log_artifacts(ml.run_id, str(run_dir), artifact_path="run")
        for lg in tracking.loggers:
            if not getattr(lg, "closed", False):
                _close(lg, "success")
    except Exception as exc:  # any tracking-server failure
        log.warning(
            "could not finish the training logs (%s: %s); the run folder is complete", type(exc).__name__, exc
        )


def fail(tracking: Tracking) -> None:
    """A run that raised: its MLflow run is marked failed (``--resume`` can still continue it)."""
    for lg in tracking.loggers:
        try:
            _close(lg, "failed")
        except Exception as exc:  # the original error matters more than the logger's
            log.warning("could not close a training logger (%s: %s)", type(exc).__name__, exc)
