"""Loading a saved run of any kind: one loader per family of ``models.registry``.

Each loader imports its family's code only when a run of that family is loaded, so ``predict`` for
an SVM never pulls in PyTorch and ``medsent predict --text`` starts fast.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from medsent.core.errors import RunError
from medsent.core.runs import RunFolder
from medsent.inference.members import OpenRun
from medsent.models.registry import ModelSpec

if TYPE_CHECKING:
    from medsent.core.config import RunConfig


class RunModel(Protocol):
    """What a loader returns: class probabilities for texts, in the run's own label order."""

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass
class LoadedRun:
    """A run's model and resolved config. ``raw_text``: the model cleans the texts itself (ensembles
    hand raw text to members that each clean it their own way)."""

    model: RunModel
    config: RunConfig
    raw_text: bool = False
    backend: str = "native"


Loader = Callable[[RunFolder, bool, OpenRun], LoadedRun]


def _sklearn(run: RunFolder, use_onnx: bool, open_run: OpenRun) -> LoadedRun:
    """``use_onnx`` does not apply to the SVM: there is no graph to run."""
    from medsent.models.registry import negation_for
    from medsent.models.svm import SvmClassifier

    cfg = run.config
    model = SvmClassifier.load(run.file("model"), cfg.svm, negation_for(cfg), cfg.text.lowercase, cfg.seed)
    return LoadedRun(model=model, config=cfg)


def _neural(run: RunFolder, use_onnx: bool, open_run: OpenRun) -> LoadedRun:
    from medsent.inference.neural import load_classifier

    clf = load_classifier(run, use_onnx)
    return LoadedRun(model=clf, config=run.config, backend=str(getattr(clf.model, "backend", "native")))


def _ensemble(run: RunFolder, use_onnx: bool, open_run: OpenRun) -> LoadedRun:
    """Members get the raw text and clean it their own way."""
    from medsent.inference.ensemble import EnsembleModel

    model = EnsembleModel.load(run, use_onnx, open_run)
    return LoadedRun(model=model, config=model.config, raw_text=True, backend=model.backend)


def _cascade(run: RunFolder, use_onnx: bool, open_run: OpenRun) -> LoadedRun:
    from medsent.inference.cascade import CascadeModel

    model = CascadeModel.load(run, use_onnx, open_run)
    return LoadedRun(model=model, config=model.config, raw_text=True, backend=model.backend)


LOADERS: dict[str, Loader] = {
    "sklearn": _sklearn,
    "neural": _neural,
    "transformer": _neural,
    "ensemble": _ensemble,
    "cascade": _cascade,
}


def load_run(run: RunFolder, spec: ModelSpec, use_onnx: bool, open_run: OpenRun) -> LoadedRun:
    """The model of a saved run, through its family's loader; ``open_run`` opens the members of a run
    made from other runs (``Predictor`` hands in itself)."""
    loader = LOADERS.get(spec.family)
    if loader is None:
        raise RunError(f"run kind '{spec.name}' has no loader")
    return loader(run, use_onnx, open_run)
