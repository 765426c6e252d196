"""Models and run kinds chosen by name.

Each entry says what a kind is: its family, its text view, and how to build its network. How a
family is trained lives one floor up in ``training.fitters``, how a saved run of it is loaded in
``inference.loaders``; both are keyed by the family named here, and a contract test checks that
every kind has both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from medsent.core.errors import ConfigError, RunError

if TYPE_CHECKING:
    from torch import nn

    from medsent.core.config import RunConfig

Family = Literal["sklearn", "neural", "transformer", "ensemble", "cascade"]


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
    trainable: bool = True


MODELS: dict[str, ModelSpec] = {
    "svm": ModelSpec(
        "svm",
        "sklearn",
        True,
        "TF-IDF word + char n-grams, LinearSVC, calibrated",
    ),
    "textcnn": ModelSpec(
        "textcnn",
        "neural",
        True,
        "TextCNN 3/4/5 x 100 filters, BatchNorm",
        _textcnn,
    ),
    "bilstm": ModelSpec(
        "bilstm",
        "neural",
        True,
        "2-layer BiLSTM + attention, LayerNorm, weight drop",
        _bilstm,
    ),
    "transformer": ModelSpec(
        "transformer",
        "transformer",
        False,
        "fine-tuned Hugging Face encoder (MiniLM default)",
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
        trainable=False,
    ),
    "cascade": ModelSpec(
        "cascade",
        "cascade",
        False,
        "fast run where it is confident, slow run elsewhere (built by `medsent cascade`)",
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
