"""From a file on disk to a clean (text, label) frame, and from frames to train / val / test splits."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from medsent.core.config import CleanConfig, DataConfig, RunConfig, SplitConfig
from medsent.core.errors import DataError
from medsent.core.labels import LABELS, parse_label
from medsent.data.clean import CleaningReport, clean_frame, dedupe_key
from medsent.data.io import read_table

log = logging.getLogger(__name__)

EXTRA_COLUMNS = ("drug", "condition", "source")
_AUTO_LABEL = ("label", "sentiment", "class")
_AUTO_RATING = ("rating", "satisfaction", "stars", "score")


@dataclass
class LabeledData:
    """A cleaned, labelled table plus where it came from and what cleaning did."""

    frame: pd.DataFrame
    report: CleaningReport
    source: dict[str, Any]

    def class_counts(self) -> dict[str, int]:
        labels = self.frame["label"].to_numpy(dtype=int)
        counts = np.bincount(labels[labels >= 0], minlength=len(LABELS))
        return {name: int(c) for name, c in zip(LABELS, counts, strict=True)}


def _columns_hint(frame: pd.DataFrame) -> str:
    cols = list(frame.columns)
    shown = ", ".join(cols[:20]) + (", ..." if len(cols) > 20 else "")
    return f"columns found: {shown or '(none)'}"


def _pick_label_source(
    frame: pd.DataFrame, cfg: DataConfig, path: Path, required: bool = True
) -> tuple[str, str] | None:
    if not required:
        col = cfg.label_col or cfg.rating_col
        if col is None or col not in frame.columns:
            return None
    if cfg.label_col:
        kind, col = "label", cfg.label_col
    elif cfg.rating_col:
        kind, col = "rating", cfg.rating_col
    else:
        lower = {c.lower(): c for c in frame.columns}
        found = next(((("label", lower[n])) for n in _AUTO_LABEL if n in lower), None)
        found = found or next(((("rating", lower[n])) for n in _AUTO_RATING if n in lower), None)
        if found is None:
            raise DataError(
                f"{path.name}: no label column; pass --label-col or --rating-col ({_columns_hint(frame)})"
            )
        kind, col = found
    if col not in frame.columns:
        raise DataError(f"{path.name}: {kind} column '{col}' not found ({_columns_hint(frame)})")
    return kind, col


def _aux_values(frame: pd.DataFrame, cfg: DataConfig, skip: str | None) -> dict[str, pd.Series]:
    """Auxiliary ratings present in the file (aux_cols), values off the aux scale made missing."""
    lo, hi = cfg.aux_scale
    out = {}
    for name, col in cfg.aux_cols.items():
        if col in frame.columns and col != skip:
            values = pd.to_numeric(frame[col], errors="coerce")
            out[name] = values.where((values >= lo) & (values <= hi))
    return out


def map_columns(
    frame: pd.DataFrame, cfg: DataConfig, path: Path, report: CleaningReport, require_label: bool = True
) -> pd.DataFrame:
    """Pick text and label, turning ratings into class ids; bad rows are counted and dropped.

    Keeps the raw rating (``rating``, for ordinal targets) and any auxiliary ratings
    (``aux_<name>``). ``require_label=False`` (auxiliary data): rows without a label get -1 and are
    kept when they carry an auxiliary rating.
    """
    if cfg.text_col not in frame.columns:
        raise DataError(f"{path.name}: text column '{cfg.text_col}' not found ({_columns_hint(frame)})")
    source = _pick_label_source(frame, cfg, path, required=require_label)
    n = len(frame)
    report.add("rows read", n, n)
    text = frame[cfg.text_col]
    has_text = text.map(lambda v: isinstance(v, str))
    aux = _aux_values(frame, cfg, source[1] if source else None)
    if source is None:
        if not aux:
            raise DataError(
                f"{path.name}: no label column and none of the auxiliary rating columns "
                f"{', '.join(cfg.aux_cols.values())} ({_columns_hint(frame)})"
            )
        any_aux = np.zeros(n, dtype=bool)
        for column in aux.values():
            any_aux |= column.notna().to_numpy()
        report.add("drop rows with no auxiliary rating", n, int(any_aux.sum()))
        keep = any_aux & has_text.to_numpy()
        report.add("drop missing text", int(any_aux.sum()), int(keep.sum()))
        out = pd.DataFrame({"text": text[keep].astype(str).to_numpy(), "label": np.full(int(keep.sum()), -1)})
        for name, column in aux.items():
            out[f"aux_{name}"] = column[keep].to_numpy(dtype=float)
        for extra in EXTRA_COLUMNS:
            if extra in frame.columns:
                out[extra] = frame.loc[keep, extra].to_numpy()
        return out
    kind, col = source
    values: pd.Series | None = None
    if kind == "rating":
        scheme = cfg.rating
        values = pd.to_numeric(frame[col], errors="coerce")
        missing = values.isna()
        outside = ~missing & ((values < scheme.scale_min) | (values > scheme.scale_max))
        if outside.any():
            msg = (
                f"{path.name}: {int(outside.sum())} ratings outside the scale "
                f"{scheme.scale_min:g}-{scheme.scale_max:g} in column '{col}'"
            )
            if cfg.strict:
                raise DataError(msg + " (--strict)")
            report.notes.append(msg + "; dropped")
            log.warning("%s; dropped", msg)
        label = np.where(
            values <= scheme.negative_max, 0, np.where(values >= scheme.positive_min, 2, 1)
        ).astype(np.int64)
        valid = ~missing & ~outside
        report.add(f"drop missing rating ('{col}')", n, int((~missing).sum()))
        report.add(
            f"drop rating outside scale {scheme.scale_min:g}-{scheme.scale_max:g}",
            int((~missing).sum()),
            int(valid.sum()),
        )
    else:
        parsed = frame[col].map(parse_label)
        missing = frame[col].isna()
        unknown = ~missing & parsed.isna()
        if unknown.any():
            examples = ", ".join(repr(v) for v in frame.loc[unknown, col].astype(str).unique()[:3])
            msg = (
                f"{path.name}: {int(unknown.sum())} labels not in {'/'.join(LABELS)} or 0-2 (e.g. {examples})"
            )
            if cfg.strict:
                raise DataError(msg + " (--strict)")
            report.notes.append(msg + "; dropped")
            log.warning("%s; dropped", msg)
        label = parsed.fillna(-1).to_numpy(dtype=np.int64)
        valid = ~missing & ~unknown
        report.add(f"drop missing label ('{col}')", n, int((~missing).sum()))
        report.add("drop unknown label", int((~missing).sum()), int(valid.sum()))
    keep = (valid & has_text).to_numpy()
    report.add("drop missing text", int(valid.sum()), int(keep.sum()))
    out = pd.DataFrame({"text": text[keep].astype(str).to_numpy(), "label": label[keep]})
    if values is not None:
        out["rating"] = values[keep].to_numpy(dtype=float)
    for name, aux_values in aux.items():
        out[f"aux_{name}"] = aux_values[keep].to_numpy(dtype=float)
    for extra in EXTRA_COLUMNS:
        if extra in frame.columns:
            out[extra] = frame.loc[keep, extra].to_numpy()
    return out


def load_labeled_for(cfg: RunConfig, path: Path, layer: dict[str, Any] | None = None) -> LabeledData:
    """Read a labelled file with a run's own column mapping and cleaning, ``layer`` overriding columns."""
    data_cfg = DataConfig.model_validate({**cfg.data.model_dump(), **layer}) if layer else cfg.data
    return load_labeled(path, data_cfg, cfg.clean)


def load_labeled(
    path: str | Path, data: DataConfig, clean: CleanConfig, require_label: bool = True
) -> LabeledData:
    """Read, map and clean one file (``require_label=False``: auxiliary data, see map_columns)."""
    raw = read_table(path, strict=data.strict)
    report = CleaningReport()
    if raw.non_utf8_bytes:
        report.notes.append(f"{raw.non_utf8_bytes} non-UTF-8 byte sequences replaced while reading")
    mapped = map_columns(raw.frame, data, raw.path, report, require_label=require_label)
    cleaned = clean_frame(mapped, clean, report)
    if cleaned.empty:
        where = "; ".join(f"{s.step}: {s.dropped}" for s in report.steps if s.dropped)
        raise DataError(
            f"{raw.path.name}: no rows left after cleaning ({len(raw.frame)} read"
            + (f"; {where})" if where else ")")
        )
    source = {
        "path": str(raw.path),
        "sha256": raw.sha256,
        "rows_raw": len(raw.frame),
        "rows_clean": len(cleaned),
    }
    return LabeledData(frame=cleaned, report=report, source=source)


def load_unlabeled(path: str | Path, data: DataConfig, clean: CleanConfig) -> LabeledData:
    """Text only (label -1): reviews a teacher labels for distillation. Cleaned like training data."""
    raw = read_table(path, strict=data.strict)
    col = next((c for c in (data.text_col, "review", "text") if c in raw.frame.columns), None)
    if col is None:
        raise DataError(f"{raw.path.name}: no text column '{data.text_col}' ({_columns_hint(raw.frame)})")
    report = CleaningReport()
    text = raw.frame[col]
    keep = text.map(lambda v: isinstance(v, str)).to_numpy()
    report.add("rows read", len(text), len(text))
    report.add("drop missing text", len(text), int(keep.sum()))
    frame = pd.DataFrame({"text": text[keep].astype(str).to_numpy(), "label": -1})
    cleaned = clean_frame(frame, clean, report)
    if cleaned.empty:
        raise DataError(f"{raw.path.name}: no reviews left after cleaning ({len(raw.frame)} read)")
    source = {
        "path": str(raw.path),
        "sha256": raw.sha256,
        "rows_raw": len(raw.frame),
        "rows_clean": len(cleaned),
    }
    return LabeledData(frame=cleaned, report=report, source=source)


@dataclass
class Splits:
    train: pd.DataFrame
    val: pd.DataFrame | None
    test: pd.DataFrame | None
    info: dict[str, Any] = field(default_factory=dict)

    def sizes(self) -> dict[str, int]:
        """Labelled rows per split; ``aux``: training rows with auxiliary ratings only."""
        labelled = int((self.train["label"] >= 0).sum())
        sizes = {
            "train": labelled,
            "val": 0 if self.val is None else len(self.val),
            "test": 0 if self.test is None else len(self.test),
        }
        if labelled < len(self.train):
            sizes["aux"] = len(self.train) - labelled
        return sizes


def describe_counts(labels: pd.Series | np.ndarray) -> str:
    """'12 rows in 3 classes (Negative 5, Neutral 2, Positive 5)' for error messages."""
    counts = np.bincount(np.asarray(labels, dtype=int), minlength=len(LABELS))
    present = int((counts > 0).sum())
    per = ", ".join(f"{name} {int(c)}" for name, c in zip(LABELS, counts, strict=True))
    n = int(counts.sum())
    return f"{n} row{'s' if n != 1 else ''} in {present} class{'es' if present != 1 else ''} ({per})"


def _carve(
    frame: pd.DataFrame, frac: float, seed: int, role: str, asked: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A stratified split, or a one-line error saying what is missing for one.

    Stratification needs every class twice (once on each side) and at least one row per class on
    each side, so a split of n rows needs ``n * frac >= k`` and ``n * (1 - frac) >= k``.
    """
    k = len(LABELS)
    counts = np.bincount(frame["label"].to_numpy(dtype=int), minlength=k)
    n = int(counts.sum())
    n_part = int(np.ceil(n * frac))
    need_rows = int(np.ceil(k / min(frac, 1 - frac)))
    if counts.min() < 2 or n_part < k or n - n_part < k:
        raise DataError(
            f"cannot carve a stratified {asked:.0%} {role} split from {describe_counts(frame['label'])}: "
            f"it needs at least 2 rows of every class and about {max(need_rows, 2 * k)} rows in all; "
            f"add data, pass a --{role}-data file, or set --{role}-frac 0"
        )
    rest, part = train_test_split(frame, test_size=frac, random_state=seed, stratify=frame["label"])
    return rest.reset_index(drop=True), part.reset_index(drop=True)


def make_splits(
    train: pd.DataFrame,
    val: pd.DataFrame | None,
    test: pd.DataFrame | None,
    cfg: SplitConfig,
    seed: int,
    aux: pd.DataFrame | None = None,
) -> Splits:
    """Carve the sets that were not given from the training pool, then remove leaked texts.

    ``aux``: rows with auxiliary ratings only (label -1), appended to training once the leakage
    guard removed those equal to a validation, test or training text.
    """
    info: dict[str, Any] = {}
    pool = train
    if test is None and cfg.test_frac > 0:
        pool, test = _carve(pool, cfg.test_frac, seed, "test", cfg.test_frac)
        info["test"] = f"carved {cfg.test_frac:.0%} of the training data (stratified, seed {seed})"
    if val is None and cfg.val_frac > 0:
        frac = cfg.val_frac / (1 - (cfg.test_frac if "test" in info else 0))
        pool, val = _carve(pool, frac, seed + 1, "val", cfg.val_frac)
        info["val"] = f"carved {cfg.val_frac:.0%} of the training data (stratified, seed {seed + 1})"
    leaked = {"train_in_val_or_test": 0, "val_in_test": 0}
    if cfg.leakage_guard:
        held: set[str] = set()
        for part in (val, test):
            if part is not None:
                held.update(part["text"].map(dedupe_key))
        if held:
            mask = pool["text"].map(dedupe_key).isin(held).to_numpy()
            leaked["train_in_val_or_test"] = int(mask.sum())
            pool = pool[~mask].reset_index(drop=True)
        if val is not None and test is not None:
            mask = val["text"].map(dedupe_key).isin(set(test["text"].map(dedupe_key))).to_numpy()
            leaked["val_in_test"] = int(mask.sum())
            val = val[~mask].reset_index(drop=True)
    info["leakage_removed"] = leaked
    if aux is not None and len(aux):
        keys = aux["text"].map(dedupe_key)
        held_keys: set[str] = set()
        for part in (val, test):
            if part is not None:
                held_keys.update(part["text"].map(dedupe_key))
        in_held = keys.isin(held_keys).to_numpy() if cfg.leakage_guard else np.zeros(len(aux), dtype=bool)
        in_pool = keys.isin(set(pool["text"].map(dedupe_key))).to_numpy()
        leaked["aux_in_val_or_test"] = int(in_held.sum())
        leaked["aux_in_train"] = int((in_pool & ~in_held).sum())
        kept = aux[~in_held & ~in_pool]
        info["aux_rows"] = len(kept)
        pool = pd.concat([pool, kept], ignore_index=True)
    removed = leaked["train_in_val_or_test"]
    why = f" ({removed} removed by the leakage guard)" if removed else ""
    if pool.empty:
        raise DataError(f"no training rows left after splitting{why}; training needs every class")
    missing = [LABELS[i] for i in range(len(LABELS)) if not (pool["label"] == i).any()]
    if missing:
        labelled = pool["label"][pool["label"] >= 0]
        raise DataError(
            f"class {', '.join(missing)} has no examples in the training data: "
            f"{describe_counts(labelled)}{why}; every class needs examples"
        )
    return Splits(train=pool.reset_index(drop=True), val=val, test=test, info=info)
