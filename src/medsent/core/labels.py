"""The label scheme: three ordered classes and how star ratings map onto them."""

from __future__ import annotations

from typing import Final

LABELS: Final[tuple[str, ...]] = ("Negative", "Neutral", "Positive")
LABEL_TO_ID: Final[dict[str, int]] = {name: i for i, name in enumerate(LABELS)}

_ALIASES: Final[dict[str, int]] = {
    "negative": 0,
    "neg": 0,
    "neutral": 1,
    "neu": 1,
    "positive": 2,
    "pos": 2,
}


def parse_label(value: object) -> int | None:
    """Map a label cell (name, alias or 0/1/2) to a class id; None if it is not a label."""
    if value is None:
        return None
    if isinstance(value, str):
        key = value.strip().lower()
        if key in _ALIASES:
            return _ALIASES[key]
        try:
            value = float(key)
        except ValueError:
            return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if number != number or not number.is_integer():
        return None
    as_int = int(number)
    return as_int if as_int in (0, 1, 2) else None
