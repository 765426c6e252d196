"""Named column/label presets for the review sites medsent knows."""

from __future__ import annotations

from typing import Any

from medsent.core.errors import ConfigError

DATA_PRESETS: dict[str, dict[str, Any]] = {
    # WebMD: satisfaction stars 1-5; 1-2 Negative, 3 Neutral, 4-5 Positive (the reference study's map).
    "webmd": {
        "text_col": "review",
        "rating_col": "satisfaction",
        "label_col": None,
        "rating": {"scale_min": 1, "scale_max": 5, "negative_max": 2, "positive_min": 4},
    },
    # Drugs.com: rating 1-10; 1-4 Negative, 5-6 Neutral, 7-10 Positive.
    "drugscom": {
        "text_col": "review",
        "rating_col": "rating",
        "label_col": None,
        "rating": {"scale_min": 1, "scale_max": 10, "negative_max": 4, "positive_min": 7},
    },
    # AskaPatient: rating 1-5, same map as WebMD.
    "askapatient": {
        "text_col": "review",
        "rating_col": "rating",
        "label_col": None,
        "rating": {"scale_min": 1, "scale_max": 5, "negative_max": 2, "positive_min": 4},
    },
}


def preset_layer(name: str | None) -> dict[str, Any]:
    """The DataConfig fields a preset sets; an unknown name lists the known ones."""
    if name is None:
        return {}
    key = name.lower()
    if key not in DATA_PRESETS:
        raise ConfigError(f"unknown data preset '{name}'; known: {', '.join(sorted(DATA_PRESETS))}")
    return {"preset": key, **DATA_PRESETS[key]}


def data_layer(
    preset: str | None = None,
    text_col: str | None = None,
    label_col: str | None = None,
    rating_col: str | None = None,
    strict: bool = False,
) -> dict[str, Any]:
    """Column choices as a config layer on top of a preset (what --preset/--text-col/... mean)."""
    layer: dict[str, Any] = dict(preset_layer(preset))
    if text_col:
        layer["text_col"] = text_col
    if label_col:
        layer["label_col"], layer["rating_col"] = label_col, None
    if rating_col:
        layer["rating_col"], layer["label_col"] = rating_col, None
    if strict:
        layer["strict"] = True
    return layer
