"""`medsent cascade`: the fast model answers where it is confident, the slow model elsewhere.

A run of kind ``cascade`` holds copies of both member runs (like an ensemble) and the confidence
threshold fitted on validation: the lowest threshold at which the cascade's macro-F1 stays within
``tolerance`` of the slow model's, at that threshold and every higher one (a lone lucky threshold
does not count). The fast model scores every review; only those below the threshold reach the
slow model, so the slow model's cost is paid for a share of the reviews. ``evaluate`` and the
server's ``/v1/stats`` report that share.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medsent.errors import ConfigError, RunError
from medsent.runs import RunFolder, RunWriter, check_same_task, read_json, write_json

if TYPE_CHECKING:
    from medsent.config import RunConfig
    from medsent.models.registry import LoadedRun
    from medsent.predict import Predictor

CASCADE_FILE = "cascade.json"


def route(fast_proba: np.ndarray, threshold: float) -> np.ndarray:
    """True where a review goes on to the slow model (the fast model's confidence is below)."""
    return np.asarray(fast_proba.max(axis=1) < threshold)


def combine(fast_proba: np.ndarray, slow_proba: np.ndarray, slow: np.ndarray) -> np.ndarray:
    return np.where(slow[:, None], slow_proba, fast_proba)


def fit_threshold(
    fast_proba: np.ndarray, slow_proba: np.ndarray, y: np.ndarray, tolerance: float
) -> dict[str, Any]:
    """The lowest confidence threshold whose cascade keeps macro-F1 within ``tolerance`` of the
    slow model's, there and at every higher threshold; with the sweep it was chosen from."""
    from medsent.evaluation.metrics import macro_f1_many

    y = np.asarray(y, dtype=int)
    slow_f1 = float(macro_f1_many(y, slow_proba.argmax(axis=1)[None, :])[0])
    fast_f1 = float(macro_f1_many(y, fast_proba.argmax(axis=1)[None, :])[0])
    candidates = np.unique(np.concatenate([np.round(np.linspace(1 / 3, 1.0, 135), 4), [1.0 + 1e-9]]))
    preds = np.stack(
        [combine(fast_proba, slow_proba, route(fast_proba, t)).argmax(axis=1) for t in candidates]
    )
    f1 = macro_f1_many(y, preds)
    ok = f1 >= slow_f1 - tolerance
    # Lowest threshold from which every higher one also holds.
    holds_above = np.flip(np.logical_and.accumulate(np.flip(ok)))
    index = int(np.argmax(holds_above)) if holds_above.any() else len(candidates) - 1
    threshold = float(candidates[index])
    share = float(route(fast_proba, threshold).mean())
    return {
        "threshold": threshold,
        "tolerance": tolerance,
        "val_macro_f1_fast": fast_f1,
        "val_macro_f1_slow": slow_f1,
        "val_macro_f1_cascade": float(f1[index]),
        "val_share_to_slow": share,
        "val_share_fast": 1 - share,
        "sweep": [
            {"threshold": float(t), "macro_f1": float(s), "share_to_slow": float(route(fast_proba, t).mean())}
            for t, s in zip(candidates[::4], f1[::4], strict=True)
        ],
    }


class CascadeModel:
    """Fast member first, the slow member for the reviews the fast one is unsure of."""

    def __init__(self, fast: Predictor, slow: Predictor, threshold: float) -> None:
        self.fast, self.slow, self.threshold = fast, slow, threshold
        self.members = [fast, slow]
        self.config: RunConfig = fast.config
        self._lock = threading.Lock()
        self.rows = 0
        self.rows_to_slow = 0
        self.last_share_to_slow = 0.0

    @property
    def backend(self) -> str:
        return f"{self.fast.backend} -> {self.slow.backend}"

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        fast_proba = self.fast.predict_proba(texts)
        slow = route(fast_proba, self.threshold)
        out = fast_proba.copy()
        if slow.any():
            out[slow] = self.slow.predict_proba([t for t, s in zip(texts, slow, strict=True) if s])
        with self._lock:
            self.rows += len(texts)
            self.rows_to_slow += int(slow.sum())
            self.last_share_to_slow = float(slow.mean()) if len(texts) else 0.0
        return out

    def routing_stats(self) -> dict[str, Any]:
        """Reviews scored so far and the share the slow model answered."""
        with self._lock:
            return {
                "threshold": self.threshold,
                "rows": self.rows,
                "rows_to_slow": self.rows_to_slow,
                "share_to_slow": self.rows_to_slow / self.rows if self.rows else 0.0,
            }

    @classmethod
    def load(cls, run: RunFolder, use_onnx: bool = True) -> CascadeModel:
        from medsent.predict import Predictor

        run_dir = run.path
        spec = read_json(run.file(CASCADE_FILE))
        try:
            fast_rel, slow_rel, threshold = str(spec["fast"]), str(spec["slow"]), float(spec["threshold"])
        except (KeyError, TypeError, ValueError):
            raise RunError(f"{run_dir / CASCADE_FILE} is not a valid cascade description") from None
        root = run_dir.resolve()
        members = []
        for rel in (fast_rel, slow_rel):
            path = (run_dir / rel).resolve()
            if root not in path.parents:
                raise RunError(f"{run_dir / CASCADE_FILE}: member path '{rel}' leaves the run folder")
            members.append(Predictor(path, use_onnx=use_onnx))
        check_same_task([m.config for m in members], [fast_rel, slow_rel])
        return cls(members[0], members[1], threshold)


def load_run(run: RunFolder, use_onnx: bool = True) -> LoadedRun:
    """Registry loader for ``cascade`` runs: the members clean the raw text their own way."""
    from medsent.models.registry import LoadedRun

    model = CascadeModel.load(run, use_onnx)
    return LoadedRun(model=model, config=model.config, raw_text=True, backend=model.backend)


def build_cascade(
    fast_run: Path,
    slow_run: Path,
    data: Path,
    out: Path,
    tolerance: float = 0.005,
    layer: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Fit the threshold on ``data`` (validation) and save the cascade as a run of its own."""
    from medsent.data.dataset import load_labeled_for
    from medsent.predict import Predictor
    from medsent.runs import file_sha256

    if not 0 <= tolerance < 1:
        raise ConfigError("--tolerance must be within [0, 1)")
    if fast_run.resolve() == slow_run.resolve():
        raise ConfigError("a cascade needs two different runs")
    for run in (fast_run, slow_run):
        if run.resolve() == out.resolve():
            raise ConfigError(f"the cascade folder {out} is also one of its members")
    fast, slow = Predictor(fast_run), Predictor(slow_run)
    check_same_task([fast.config, slow.config], [fast_run.name, slow_run.name])
    labeled = load_labeled_for(fast.config, data, layer or {})
    texts, y = labeled.frame["text"].tolist(), labeled.frame["label"].to_numpy()
    fitted = fit_threshold(fast.predict_proba(texts), slow.predict_proba(texts), y, tolerance)
    names = {"fast": f"fast-{fast_run.resolve().name}", "slow": f"slow-{slow_run.resolve().name}"}
    writer = RunWriter(out, overwrite=overwrite)
    try:
        members = writer.path / "members"
        members.mkdir()
        for role, run in (("fast", fast_run), ("slow", slow_run)):
            shutil.copytree(run, members / names[role], symlinks=False)
            RunFolder(members / names[role])  # the copy is checked like any run
        spec = {
            "fast": f"members/{names['fast']}",
            "slow": f"members/{names['slow']}",
            **fitted,
            "fit_data": {"path": str(data), "sha256": file_sha256(data), "n": len(y)},
        }
        write_json(writer.path / CASCADE_FILE, spec)
        writer.write_labels()
        writer.write_metrics({"members": list(names.values())})
        writer.commit({"model": "cascade", "family": "cascade", "members": list(names.values())})
    except BaseException:
        writer.abort()
        raise
    return spec
