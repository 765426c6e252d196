"""Typed, validated configuration. Every default is visible here; YAML files and CLI flags override.

Unknown keys are rejected (``extra="forbid"``) so a typo in a YAML file is an error, not a silent default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from medsent.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class RatingScheme(_Strict):
    """How a numeric rating maps to Negative / Neutral / Positive (inclusive bounds)."""

    scale_min: float = 1
    scale_max: float = 5
    negative_max: float = 2
    positive_min: float = 4

    @model_validator(mode="after")
    def _ordered(self) -> RatingScheme:
        if not self.scale_min <= self.negative_max < self.positive_min <= self.scale_max:
            raise ValueError(
                "rating thresholds must satisfy scale_min <= negative_max < positive_min <= scale_max"
            )
        return self


class DataConfig(_Strict):
    """Which columns hold the text and the label, and how ratings are mapped."""

    preset: str | None = None
    text_col: str = "review"
    label_col: str | None = None
    rating_col: str | None = None
    rating: RatingScheme = Field(default_factory=RatingScheme)
    strict: bool = False

    @model_validator(mode="after")
    def _one_label_source(self) -> DataConfig:
        if self.label_col and self.rating_col:
            raise ValueError("give either label_col or rating_col, not both")
        return self


class CleanConfig(_Strict):
    """Cleaning steps; each one is counted in the cleaning report."""

    unescape_html: bool = True
    fix_encoding: bool = True
    strip_urls: bool = True
    normalize_whitespace: bool = True
    min_words: int = Field(default=3, ge=0)
    max_words: int = Field(default=2000, ge=1)
    dedupe_exact: bool = True
    dedupe_normalized: bool = True
    dedupe_truncated: bool = True
    english_only: bool = False

    @model_validator(mode="after")
    def _word_range(self) -> CleanConfig:
        if self.min_words > self.max_words:
            raise ValueError("min_words must not exceed max_words")
        return self


class SplitConfig(_Strict):
    """Stratified split fractions, used for the sets that are not given as files."""

    val_frac: float = Field(default=0.1, ge=0.0, lt=1.0)
    test_frac: float = Field(default=0.2, ge=0.0, lt=1.0)
    leakage_guard: bool = True

    @model_validator(mode="after")
    def _room_for_training(self) -> SplitConfig:
        if self.val_frac + self.test_frac >= 0.9:
            raise ValueError("val_frac + test_frac must leave at least 10% for training")
        return self


class TextConfig(_Strict):
    """Model-side text preprocessing. ``negation=None`` means the model's own default."""

    negation: bool | None = None
    lowercase: bool = True


class SvmConfig(_Strict):
    """TF-IDF + LinearSVC with calibrated probabilities."""

    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] | None = (2, 5)
    max_features: int | None = Field(default=200_000, ge=1)
    char_max_features: int | None = Field(default=200_000, ge=1)
    min_df: int = Field(default=2, ge=1)
    max_df: float = Field(default=0.9, gt=0.0, le=1.0)
    sublinear_tf: bool = True
    C: float = Field(default=0.1, gt=0.0)
    class_weight: Literal["balanced"] | None = "balanced"
    calibration_folds: int = Field(default=3, ge=2)
    balanced_probabilities: bool = True

    @model_validator(mode="after")
    def _ngram_ranges(self) -> SvmConfig:
        for name, rng in (("word_ngrams", self.word_ngrams), ("char_ngrams", self.char_ngrams)):
            if rng is not None and not 1 <= rng[0] <= rng[1]:
                raise ValueError(f"{name} must be (low, high) with 1 <= low <= high")
        return self


class RunConfig(_Strict):
    """Everything one training run needs; saved resolved in the run folder."""

    model: str = "svm"
    seed: int = 13
    data: DataConfig = Field(default_factory=DataConfig)
    clean: CleanConfig = Field(default_factory=CleanConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    text: TextConfig = Field(default_factory=TextConfig)
    svm: SvmConfig = Field(default_factory=SvmConfig)


def format_validation_error(exc: ValidationError) -> str:
    """One line naming each bad field, for the CLI."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "config"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def deep_update(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Merge nested dicts: later layers (YAML, then CLI flags) win key by key."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_update(out[key], value)
        else:
            out[key] = value
    return out


def load_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping with the safe loader (never constructs Python objects)."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"config file {path} is not valid YAML: {first}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return loaded


def build_config(*layers: dict[str, Any]) -> RunConfig:
    """Validate the merged layers into a RunConfig, or raise a one-line ConfigError."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = deep_update(merged, layer)
    try:
        return RunConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(f"invalid config: {format_validation_error(exc)}") from None
