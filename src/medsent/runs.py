"""Run folders: written under a temporary name and renamed, so a crash never leaves half an artifact.

A run describes itself with JSON/YAML/markdown files and safe weight formats only; loading never
unpickles, and a run folder holding an unexpected file type is refused.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medsent._version import __version__
from medsent.errors import RunError

if TYPE_CHECKING:
    from medsent.config import RunConfig

RUN_FILE = "run.json"
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


class RunWriter:
    """Collect a run in a hidden sibling folder; ``commit`` swaps it into place in one rename."""

    def __init__(self, out: Path, overwrite: bool = False) -> None:
        self.out = out
        if out.exists() and not overwrite:
            raise RunError(f"run folder {out} already exists; pass --overwrite or choose another --out")
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(out)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-{os.getpid()}-", dir=out.parent))

    @property
    def path(self) -> Path:
        return self.tmp

    def commit(self, meta: dict[str, Any]) -> Path:
        write_json(self.tmp / RUN_FILE, {"medsent_version": __version__, **meta})
        old = None
        if self.out.exists():
            old = self.out.with_name(f".{self.out.name}.old-{os.getpid()}")
            os.replace(self.out, old)
        os.replace(self.tmp, self.out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
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


def load_config(run_dir: Path) -> RunConfig:
    """The run's resolved config.json, validated like a fresh one."""
    from pydantic import ValidationError

    from medsent.config import RunConfig, format_validation_error

    try:
        return RunConfig.model_validate(read_json(run_dir / "config.json"))
    except ValidationError as exc:
        raise RunError(f"{run_dir / 'config.json'} is invalid: {format_validation_error(exc)}") from None


def run_id(run_dir: Path) -> str:
    """A content id for a run: the sha256 of its files' hashes (any change to weights or
    calibration changes it)."""
    import hashlib

    from medsent.data.io import file_sha256

    h = hashlib.sha256()
    for path in sorted(p for p in run_dir.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(run_dir)).encode())
        h.update(bytes.fromhex(file_sha256(path)))
    return h.hexdigest()[:16]
