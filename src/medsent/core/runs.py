"""Run folders, owned here: their file names, how they are written and how they are read.

A run is written under a temporary name and renamed, so a crash never leaves half an artifact. It
describes itself with JSON/YAML/markdown files and safe weight formats only; loading never
unpickles, and a run folder holding an unexpected file type is refused. ``RunFolder`` opens a saved
run once and is what every reader takes.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medsent._version import __version__
from medsent.core.errors import RunError
from medsent.core.labels import LABELS

if TYPE_CHECKING:
    import numpy as np

    from medsent.core.config import RunConfig

# The files every run folder may hold, named here and nowhere else. A kind's own weight files
# (svm.safetensors, model.onnx, ensemble.json...) belong to the kind that writes and reads them.
RUN_FILE = "run.json"  # the kind and what built it: written last, so its presence means complete
CONFIG_FILE = "config.json"  # the resolved RunConfig
LABELS_FILE = "labels.json"  # the class names in the order of the model's outputs
METRICS_FILE = "metrics.json"  # validation/test figures and training costs
MANIFEST_FILE = "manifest.json"  # data provenance: files, hashes, cleaning, leakage removed
CALIBRATION_FILE = "calibration.json"  # the fitted temperature (`medsent calibrate`)
DECISION_FILE = "decision.json"  # per-class offsets of the macro-F1 decision rule
HISTORY_FILE = "history.csv"  # per-epoch training history of neural runs
SAFE_SUFFIXES = frozenset({".json", ".yaml", ".yml", ".md", ".png", ".csv", ".safetensors", ".txt", ".onnx"})
# TensorBoard event files (logs/tensorboard/events.out.tfevents.<time>.<host>...): written by the
# run's logger, never read by medsent.
_EVENT_FILE = "events.out.tfevents."


def _allowed(run_dir: Path, path: Path) -> bool:
    if path.suffix.lower() in SAFE_SUFFIXES:
        return True
    rel = path.relative_to(run_dir).parts
    return "logs" in rel[:-1] and path.name.startswith(_EVENT_FILE)


def write_json(path: Path, data: Any) -> None:
    """Write JSON through a temp file in the same folder and an atomic rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, ensure_ascii=False, default=str)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any:
    if not path.is_file():
        raise RunError(f"missing {path.name} in run folder {path.parent}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunError(f"{path} is not valid JSON: {exc}") from None


def file_sha256(path: Path) -> str:
    """The sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _swap_in(tmp: Path, target: Path) -> None:
    """Put the finished folder ``tmp`` at ``target``; an existing target is moved aside first and
    removed only once the new one is in place, so a crash leaves the old folder or the new one."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        if old.exists():
            shutil.rmtree(old)
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _partial(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(target)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-{os.getpid()}-", dir=target.parent))


@contextlib.contextmanager
def atomic_folder(target: Path) -> Iterator[Path]:
    """A folder filled under a hidden name beside ``target`` and renamed into place when the block
    ends without error. On an error nothing is left; after a kill, the next writer of ``target``
    removes the half-written folder. Every folder medsent writes whole (runs, exports, assembled
    encoders, pretrained encoders) goes through here."""
    tmp = _partial(target)
    try:
        yield tmp
        _swap_in(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class RunWriter:
    """Collect a run in a hidden sibling folder; ``commit`` swaps it into place in one rename."""

    def __init__(self, out: Path, overwrite: bool = False) -> None:
        self.out = out
        if out.exists() and not overwrite:
            raise RunError(f"run folder {out} already exists; pass --overwrite or choose another --out")
        self.tmp = _partial(out)

    @property
    def path(self) -> Path:
        return self.tmp

    def write_config(self, cfg: RunConfig) -> None:
        write_json(self.tmp / CONFIG_FILE, cfg.model_dump(mode="json"))

    def write_labels(self) -> None:
        """The class order of the run's outputs: medsent's own."""
        write_json(
            self.tmp / LABELS_FILE, {"labels": list(LABELS), "ids": {n: i for i, n in enumerate(LABELS)}}
        )

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        write_json(self.tmp / METRICS_FILE, metrics)

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        write_json(self.tmp / MANIFEST_FILE, manifest)

    def commit(self, meta: dict[str, Any]) -> Path:
        write_json(self.tmp / RUN_FILE, {"medsent_version": __version__, **meta})
        _swap_in(self.tmp, self.out)
        return self.out

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_partials(out: Path) -> list[Path]:
    """Half-written folders of ``out`` left by killed processes (``.NAME.partial-PID-*``).

    A partial folder whose writer is still alive is left alone; one without a pid in its name
    (written by an older version) is stale by definition once a new writer starts.
    """
    removed = []
    for path in out.parent.glob(f".{out.name}.partial-*"):
        pid_part = path.name[len(f".{out.name}.partial-") :].split("-", 1)[0]
        if pid_part.isdigit() and int(pid_part) != os.getpid() and _alive(int(pid_part)):
            continue
        if pid_part.isdigit() and int(pid_part) == os.getpid():
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def check_run_folder(run_dir: Path) -> dict[str, Any]:
    """Validate a run folder before anything in it is loaded; returns run.json."""
    if not run_dir.is_dir():
        raise RunError(f"run folder not found: {run_dir}")
    meta = read_json(run_dir / RUN_FILE)
    if not isinstance(meta, dict) or "model" not in meta:
        raise RunError(f"{run_dir / RUN_FILE} does not describe a medsent run")
    for path in run_dir.rglob("*"):
        if path.is_symlink():
            raise RunError(f"run folder holds a symbolic link, refusing to load: {path}")
        if path.is_file() and not _allowed(run_dir, path):
            raise RunError(f"run folder holds an unexpected file type, refusing to load: {path}")
    return meta


_ANY = object()

# Settings earlier versions had and this one dropped, with the value that meant "off". A saved run
# that recorded the off value loads unchanged (it behaves the same without it); one that used the
# setting is refused by name, since this version would serve it differently.
RETIRED: dict[str, object] = {
    "textcnn.pooling": "max",
    "trainer.early_stop_at": "any_epoch",
    "trainer.ema_decay": None,
    "distill.augment": 0,
    "distill.augment_word_drop": _ANY,
    "distill.objective": "kl",
    "distill.hint_weight": 0.0,
    "distill.evidence": [],
    "embeddings.init": None,
    "embeddings.freeze": _ANY,
}


def drop_retired(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A saved config without the retired settings, and those it had switched on (``key=value``)."""
    from medsent.core.config import RunConfig

    known = RunConfig.model_fields
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    used = []
    for dotted, off in RETIRED.items():
        section, _, key = dotted.partition(".")
        values = out.get(section)
        if not isinstance(values, dict) or key not in values:
            continue
        value = values.pop(key)
        if off is not _ANY and value != off and not (off == [] and value in ((), None)):
            used.append(f"{dotted}={value}")
        if not values and section not in known:
            del out[section]
    return out, used


def load_config(run_dir: Path) -> RunConfig:
    """The run's resolved config.json, validated like a fresh one."""
    from pydantic import ValidationError

    from medsent.core.config import RunConfig, format_validation_error

    data = read_json(run_dir / CONFIG_FILE)
    if isinstance(data, dict):
        data, used = drop_retired(data)
        if used:
            raise RunError(
                f"{run_dir / CONFIG_FILE}: the run was trained with {', '.join(used)}, which this version "
                "no longer offers; retrain it with this version"
            )
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise RunError(f"{run_dir / CONFIG_FILE} is invalid: {format_validation_error(exc)}") from None


def run_id(run_dir: Path) -> str:
    """A content id for a run: the sha256 of its files' hashes (any change to weights or
    calibration changes it)."""
    h = hashlib.sha256()
    for path in sorted(p for p in run_dir.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(run_dir)).encode())
        h.update(bytes.fromhex(file_sha256(path)))
    return h.hexdigest()[:16]


class RunFolder:
    """One saved run, checked once when opened (run.json present, safe file types only, no links);
    everything else about the folder is read through here, each part on first use.

    Loaders, predictors, compare, ensembles, cascades and distillation take a RunFolder; the file
    names above are spelled in this module only."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.meta: dict[str, Any] = check_run_folder(self.path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    @property
    def kind(self) -> str:
        """What run.json says built it: a model name ("svm") or a made kind ("ensemble")."""
        return str(self.meta["model"])

    def file(self, name: str) -> Path:
        """A kind's own file inside the run (its weights, its spec)."""
        return self.path / name

    @functools.cached_property
    def config(self) -> RunConfig:
        return load_config(self.path)

    @functools.cached_property
    def label_order(self) -> list[int] | None:
        """Column order that maps the run's own label order onto medsent's (None: the same);
        a run with another label set is refused."""
        stored = read_json(self.path / LABELS_FILE).get("labels")
        if stored == list(LABELS):
            return None
        if not isinstance(stored, list) or sorted(map(str, stored)) != sorted(LABELS):
            raise RunError(f"{self.path}: label map {stored} is not a permutation of {list(LABELS)}")
        return [stored.index(name) for name in LABELS]

    @property
    def temperature(self) -> float | None:
        """The calibration temperature, None for an uncalibrated run."""
        path = self.path / CALIBRATION_FILE
        if not path.exists():
            return None
        data = read_json(path)
        value = data.get("temperature") if isinstance(data, dict) else None
        if not isinstance(value, (int, float)) or not 0 < value < 1e3:
            raise RunError(f"{path} has no valid temperature")
        return float(value)

    def offsets(self, temperature: float | None) -> np.ndarray | None:
        """The macro-F1 decision rule's per-class offsets, refused if they were fitted on
        probabilities of another temperature than the run's now."""
        import numpy as np

        path = self.path / DECISION_FILE
        if not path.exists():
            return None
        data = read_json(path)
        try:
            values = np.asarray([float(data["offsets"][name]) for name in LABELS])
        except (KeyError, TypeError, ValueError):
            raise RunError(f"{path} has no valid offsets for {', '.join(LABELS)}") from None
        if not np.isfinite(values).all() or np.abs(values).max() > 50:
            raise RunError(f"{path} has no valid offsets for {', '.join(LABELS)}")
        fitted = data.get("fitted_on_temperature")
        if (fitted is None) != (temperature is None) or (
            fitted is not None and temperature is not None and abs(float(fitted) - temperature) > 1e-9
        ):
            raise RunError(
                f"{path} was fitted on probabilities with temperature {fitted}, the run now has "
                f"{temperature}; refit it: medsent calibrate RUN --data VAL --objective macro_f1"
            )
        return values

    def _optional(self, name: str) -> dict[str, Any]:
        path = self.path / name
        data = read_json(path) if path.exists() else {}
        return data if isinstance(data, dict) else {}

    @property
    def metrics(self) -> dict[str, Any]:
        """metrics.json, or {} for a run without one."""
        return self._optional(METRICS_FILE)

    @property
    def manifest(self) -> dict[str, Any]:
        """manifest.json, or {} for a run without one (ensembles, cascades)."""
        return self._optional(MANIFEST_FILE)

    @property
    def decision(self) -> dict[str, Any]:
        return self._optional(DECISION_FILE)

    @property
    def history(self) -> Path | None:
        path = self.path / HISTORY_FILE
        return path if path.is_file() else None

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        write_json(self.path / METRICS_FILE, metrics)

    def write_calibration(self, summary: dict[str, Any]) -> None:
        """A new temperature. Offsets fitted on the old one no longer hold: ``offsets`` refuses them
        until they are refitted or dropped with ``write_decision(None)``."""
        write_json(self.path / CALIBRATION_FILE, summary)

    def write_decision(self, summary: dict[str, Any] | None) -> None:
        """The decision rule's offsets, or None to drop them."""
        if summary is None:
            (self.path / DECISION_FILE).unlink(missing_ok=True)
        else:
            write_json(self.path / DECISION_FILE, summary)

    @property
    def task(self) -> dict[str, Any]:
        return rating_signature(self.config)

    def run_id(self) -> str:
        return run_id(self.path)


def rating_signature(cfg: RunConfig) -> dict[str, Any]:
    """What turns a rating into a label: runs that differ here learned different tasks."""
    return cfg.data.rating.model_dump()


def check_same_task(configs: Sequence[RunConfig], names: Sequence[str]) -> None:
    """Refuse to combine or compare runs whose labels mean different things."""
    first = rating_signature(configs[0])
    for cfg, name in zip(configs[1:], names[1:], strict=True):
        if rating_signature(cfg) != first:
            raise RunError(
                f"runs '{names[0]}' and '{name}' were trained on different label maps "
                f"({first} vs {rating_signature(cfg)}); refusing to mix them"
            )
