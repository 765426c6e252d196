"""Models and run kinds chosen by name.

Each entry says which family trains it, its text view, how to build the network, and how to load a
saved run of its kind. Loaders are named as ``"module:function"`` and imported only when a run of
that kind is loaded, so ``predict`` pulls in the code of the one model it serves and nothing imports
its way back here in a circle.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from medsent.errors import ConfigError, RunError
from medsent.runs import RunFolder

if TYPE_CHECKING:
    from torch import nn

    from medsent.config import RunConfig

Family = Literal["sklearn", "neural", "transformer", "ensemble", "cascade"]


class Fitter(Protocol):
    """How a family trains: checks before any data is read, and the fit that fills ``model_dir``."""

    resumable: bool  # keeps checkpoints in a work folder that `train --resume` continues from

    def check(self, cfg: RunConfig) -> None: ...

    def is_rank_zero(self) -> bool: ...

    def fit(
        self, cfg: RunConfig, splits: Any, model_dir: Path, work: Path, resume: bool, loggers: list[Any]
    ) -> dict[str, Any] | None: ...


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


Loader = Callable[[RunFolder, bool], LoadedRun]


def _textcnn(vocab_size: int, cfg: RunConfig) -> nn.Module:
    from medsent.models.textcnn import TextCNN

    return TextCNN(vocab_size, cfg.textcnn)


def _bilstm(vocab_size: int, cfg: RunConfig) -> nn.Module:
    from medsent.models.bilstm import BiLSTMAttention

    return BiLSTMAttention(vocab_size, cfg.bilstm)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: Family
    negation_default: bool
    summary: str
    build: Callable[[int, Any], Any] | None = None
    loader: str = ""  # "module:function" taking (RunFolder, use_onnx) and returning a LoadedRun
    trainable: bool = True
    fit_with: str = ""  # "module:Class", a Fitter

    def load_run(self, run: RunFolder, use_onnx: bool = True) -> LoadedRun:
        loader: Loader = _resolve(self.loader, f"run kind '{self.name}' has no loader")
        return loader(run, use_onnx)

    def fitter(self) -> Fitter:
        factory = _resolve(self.fit_with, f"'{self.name}' runs are not trained by `medsent train`")
        fitter: Fitter = factory()
        return fitter


def _resolve(path: str, missing: str) -> Any:
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise RunError(missing)
    return getattr(importlib.import_module(module_name), attr)


_NEURAL_LOADER = "medsent.neural.infer:load_run"
_NEURAL_FIT = "medsent.neural.fit:NeuralFitter"

MODELS: dict[str, ModelSpec] = {
    "svm": ModelSpec(
        "svm",
        "sklearn",
        True,
        "TF-IDF word + char n-grams, LinearSVC, calibrated",
        loader="medsent.models.svm:load_run",
        fit_with="medsent.models.svm:SvmFitter",
    ),
    "textcnn": ModelSpec(
        "textcnn",
        "neural",
        True,
        "TextCNN 3/4/5 x 100 filters, BatchNorm",
        _textcnn,
        _NEURAL_LOADER,
        fit_with=_NEURAL_FIT,
    ),
    "bilstm": ModelSpec(
        "bilstm",
        "neural",
        True,
        "2-layer BiLSTM + attention, LayerNorm, weight drop",
        _bilstm,
        _NEURAL_LOADER,
        fit_with=_NEURAL_FIT,
    ),
    "transformer": ModelSpec(
        "transformer",
        "transformer",
        False,
        "fine-tuned Hugging Face encoder (MiniLM default)",
        loader=_NEURAL_LOADER,
        fit_with=_NEURAL_FIT,
    ),
}
ALIASES: dict[str, str] = {"cnn": "textcnn", "lstm": "bilstm", "bert": "transformer"}

# Runs that are made from other runs rather than trained: loadable like any run, never trained.
RUN_KINDS: dict[str, ModelSpec] = {
    **MODELS,
    "ensemble": ModelSpec(
        "ensemble",
        "ensemble",
        False,
        "soft or hard vote of saved runs (built by `medsent ensemble`)",
        loader="medsent.ensemble:load_run",
        trainable=False,
    ),
    "cascade": ModelSpec(
        "cascade",
        "cascade",
        False,
        "fast run where it is confident, slow run elsewhere (built by `medsent cascade`)",
        loader="medsent.cascade:load_run",
        trainable=False,
    ),
}


def get_model_spec(name: str) -> ModelSpec:
    """A trainable model by name or alias; unknown names list the known ones."""
    key = ALIASES.get(name.lower(), name.lower())
    if key not in MODELS:
        made = [k for k, s in RUN_KINDS.items() if not s.trainable]
        if key in made:
            raise ConfigError(f"'{key}' runs are built from other runs (medsent {key}), not trained")
        known = ", ".join(sorted([*MODELS, *ALIASES]))
        raise ConfigError(f"unknown model '{name}'; known: {known}")
    return MODELS[key]


def run_kind(name: str) -> ModelSpec:
    """The kind of a saved run (run.json's ``model``), trainable or made from other runs."""
    key = ALIASES.get(str(name).lower(), str(name).lower())
    if key not in RUN_KINDS:
        raise RunError(f"run kind '{name}' is unknown to this version; known: {', '.join(sorted(RUN_KINDS))}")
    return RUN_KINDS[key]


def negation_for(cfg: RunConfig) -> bool:
    """Negation tagging for a run: the config's choice, else the model's default."""
    spec = get_model_spec(cfg.model)
    return spec.negation_default if cfg.text.negation is None else cfg.text.negation
