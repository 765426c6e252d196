"""Models chosen by name. Each entry says which family trains it and its text view defaults."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from medsent.errors import ConfigError

Family = Literal["sklearn", "neural"]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: Family
    negation_default: bool
    summary: str


MODELS: dict[str, ModelSpec] = {
    "svm": ModelSpec("svm", "sklearn", True, "TF-IDF word + char n-grams, LinearSVC, calibrated"),
}
ALIASES: dict[str, str] = {}


def get_model_spec(name: str) -> ModelSpec:
    key = ALIASES.get(name.lower(), name.lower())
    if key not in MODELS:
        known = ", ".join(sorted([*MODELS, *ALIASES]))
        raise ConfigError(f"unknown model '{name}'; known: {known}")
    return MODELS[key]
