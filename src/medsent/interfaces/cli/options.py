"""What several commands share: the options that say how to read a labelled file, declared once,
and the helpers that turn flags into config layers."""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

PresetOpt = Annotated[
    str | None, typer.Option("--preset", help="Data preset: webmd, drugscom or askapatient.")
]
TextColOpt = Annotated[str | None, typer.Option("--text-col", help="Column holding the review text.")]
LabelColOpt = Annotated[
    str | None, typer.Option("--label-col", help="Column holding labels (names or 0/1/2).")
]
RatingColOpt = Annotated[
    str | None, typer.Option("--rating-col", help="Column holding numeric ratings to map to labels.")
]
StrictOpt = Annotated[
    bool, typer.Option("--strict", help="Fail on bad ratings/labels/bytes instead of counting and dropping.")
]


@dataclasses.dataclass(frozen=True)
class DataColumns:
    """How to read a labelled file: a data preset and/or explicit columns, and strictness."""

    preset: str | None = None
    text_col: str | None = None
    label_col: str | None = None
    rating_col: str | None = None
    strict: bool = False

    def layer(self) -> dict[str, Any]:
        """The config's ``data`` layer these options make (empty when none was given)."""
        from medsent.data.presets import data_layer

        return data_layer(self.preset, self.text_col, self.label_col, self.rating_col, self.strict)

    def api_kwargs(self) -> dict[str, Any]:
        """The same options as keyword arguments of the Python API (``medsent.evaluate``...)."""
        return dataclasses.asdict(self)


NO_COLUMNS = DataColumns()
_COLUMN_OPTIONS: dict[str, tuple[Any, Any]] = {
    "preset": (PresetOpt, None),
    "text_col": (TextColOpt, None),
    "label_col": (LabelColOpt, None),
    "rating_col": (RatingColOpt, None),
    "strict": (StrictOpt, False),
}


def data_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command the five reading options (--preset, --text-col, --label-col, --rating-col,
    --strict) as one ``columns: DataColumns`` argument: Typer sees the options, the command a value."""
    signature = inspect.signature(command, eval_str=True)
    own = [p for p in signature.parameters.values() if p.name != "columns"]
    added = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
        for name, (annotation, default) in _COLUMN_OPTIONS.items()
    ]

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        columns = DataColumns(**{name: kwargs.pop(name) for name in _COLUMN_OPTIONS})
        return command(*args, columns=columns, **kwargs)

    run.__signature__ = signature.replace(parameters=[*own, *added])  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in [*own, *added]}
    return run


def flag_layer(flags: dict[str, Any]) -> dict[str, Any]:
    """The config layer of the flags a user gave: ``{"trainer.max_epochs": 3, "optim.lr": None}``
    becomes ``{"trainer": {"max_epochs": 3}}`` (flags left unset are not part of it)."""
    layer: dict[str, Any] = {}
    for key, value in flags.items():
        if value is None:
            continue
        *path, leaf = key.split(".")
        node = layer
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = value
    return layer


def aux_targets(items: list[str]) -> dict[str, float]:
    """``--aux-target NAME=WEIGHT`` (repeatable; a bare NAME weighs 1.0)."""
    from medsent.core.errors import ConfigError

    out: dict[str, float] = {}
    for item in items:
        name, sep, weight = item.partition("=")
        try:
            out[name.strip()] = float(weight) if sep else 1.0
        except ValueError:
            raise ConfigError(
                f"--aux-target expects NAME=WEIGHT (e.g. effectiveness=0.3), got '{item}'"
            ) from None
    return out


def parse_sets(items: list[str]) -> dict[str, Any]:
    from medsent.core.config import parse_sets as parse

    return parse(items)


def data_config(layer: dict[str, Any]) -> Any:
    from medsent.core.config import build_config

    return build_config({"data": layer}).data


def load_for_run(predictor: Any, data: Path, layer: dict[str, Any]) -> Any:
    from medsent.data.dataset import load_labeled_for

    return load_labeled_for(predictor.config, data, layer)
