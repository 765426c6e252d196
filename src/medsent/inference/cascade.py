"""`medsent cascade`: the fast model answers where it is confident, the slow model elsewhere.

A run of kind ``cascade`` holds copies of both member runs (like an ensemble) and the confidence
threshold fitted on validation: the lowest threshold at which the cascade's macro-F1 stays within
``tolerance`` of the slow model's, at that threshold and every higher one (a lone lucky threshold
does not count). The fast model scores every review; only those below the threshold reach the
slow model, so the slow model's cost is paid for a share of the reviews. ``evaluate`` and the
server's ``/v1/stats`` report that share.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from medsent.core.errors import RunError
from medsent.core.runs import RunFolder, check_same_task, read_json
from medsent.inference.members import MemberRun, OpenRun, member_paths

if TYPE_CHECKING:
    from medsent.core.config import RunConfig

CASCADE_FILE = "cascade.json"


def route(fast_proba: np.ndarray, threshold: float) -> np.ndarray:
    """True where a review goes on to the slow model (the fast model's confidence is below)."""
    return np.asarray(fast_proba.max(axis=1) < threshold)


def combine(fast_proba: np.ndarray, slow_proba: np.ndarray, slow: np.ndarray) -> np.ndarray:
    return np.where(slow[:, None], slow_proba, fast_proba)


class CascadeModel:
    """Fast member first, the slow member for the reviews the fast one is unsure of."""

    def __init__(self, fast: MemberRun, slow: MemberRun, threshold: float) -> None:
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
    def load(cls, run: RunFolder, use_onnx: bool, open_run: OpenRun) -> CascadeModel:
        run_dir = run.path
        spec = read_json(run.file(CASCADE_FILE))
        try:
            fast_rel, slow_rel, threshold = str(spec["fast"]), str(spec["slow"]), float(spec["threshold"])
        except (KeyError, TypeError, ValueError):
            raise RunError(f"{run_dir / CASCADE_FILE} is not a valid cascade description") from None
        paths = member_paths(run, [fast_rel, slow_rel], CASCADE_FILE)
        members = [open_run(path, use_onnx) for path in paths]
        check_same_task([m.config for m in members], [fast_rel, slow_rel])
        return cls(members[0], members[1], threshold)
