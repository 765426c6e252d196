"""Models chosen by name. Each entry says which family trains it, its text view and how to build it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from medsent.errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

    from medsent.config import RunConfig

Family = Literal["sklearn", "neural", "transformer"]


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


MODELS: dict[str, ModelSpec] = {
    "svm": ModelSpec("svm", "sklearn", True, "TF-IDF word + char n-grams, LinearSVC, calibrated"),
    "textcnn": ModelSpec("textcnn", "neural", True, "TextCNN 3/4/5 x 100 filters, BatchNorm", _textcnn),
    "bilstm": ModelSpec(
        "bilstm", "neural", True, "2-layer BiLSTM + attention, LayerNorm, weight drop", _bilstm
    ),
    "transformer": ModelSpec(
        "transformer", "transformer", False, "fine-tuned Hugging Face encoder (MiniLM default)"
    ),
}
ALIASES: dict[str, str] = {"cnn": "textcnn", "lstm": "bilstm", "bert": "transformer"}


def get_model_spec(name: str) -> ModelSpec:
    key = ALIASES.get(name.lower(), name.lower())
    if key not in MODELS:
        known = ", ".join(sorted([*MODELS, *ALIASES]))
        raise ConfigError(f"unknown model '{name}'; known: {known}")
    return MODELS[key]
