"""Runs made of other runs (ensembles, cascades) open their members through a function handed in by
``Predictor``, so the combined kinds never import the predictor that loads them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from medsent.core.errors import RunError
from medsent.core.runs import RunFolder

if TYPE_CHECKING:
    from medsent.core.config import RunConfig


class MemberRun(Protocol):
    """What a combined run needs of each member: its config, backend, probabilities and decisions."""

    config: RunConfig
    backend: str

    def predict_proba(self, texts: Sequence[str], calibrated: bool = True) -> np.ndarray: ...

    def decide(self, proba: np.ndarray) -> np.ndarray: ...


OpenRun = Callable[[Path, bool], MemberRun]  # (member folder, use_onnx) -> the member, ready to score


def member_paths(run: RunFolder, rels: Sequence[str], described_in: str) -> list[Path]:
    """The members' folders, each of which must lie inside the combined run's folder."""
    root = run.path.resolve()
    paths = []
    for rel in rels:
        path = (run.path / rel).resolve()
        if root not in path.parents:
            raise RunError(f"{run.path / described_in}: member path '{rel}' leaves the run folder")
        paths.append(path)
    return paths
