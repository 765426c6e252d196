"""Reading review tables (CSV, TSV, Parquet, JSON, JSONL) with clear errors instead of tracebacks."""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from medsent.core.errors import DataError
from medsent.core.runs import file_sha256

log = logging.getLogger(__name__)

FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


@dataclass
class RawTable:
    """A table as read, with what the reader had to repair."""

    frame: pd.DataFrame
    path: Path
    sha256: str
    non_utf8_bytes: int = 0


def detect_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        known = ", ".join(sorted(FORMATS))
        raise DataError(f"unknown data format '{suffix or path.name}' for {path}; known: {known}")
    return FORMATS[suffix]


def _decode(raw: bytes, path: Path, strict: bool) -> tuple[str, int]:
    """Decode UTF-8; repair stray bytes (counted) unless strict, since scrapes often hold a few."""
    try:
        return raw.decode("utf-8-sig"), 0
    except UnicodeDecodeError as exc:
        if strict:
            raise DataError(
                f"{path} is not valid UTF-8 (first bad byte at offset {exc.start}); "
                "re-encode it or drop --strict to repair such bytes"
            ) from None
    text = raw.decode("utf-8-sig", errors="replace")
    bad = text.count("\ufffd") - raw.decode("utf-8-sig", errors="ignore").count("\ufffd")
    log.warning("%s: %d non-UTF-8 byte sequences replaced", path.name, bad)
    return text, bad


def read_table(path: str | Path, strict: bool = False) -> RawTable:
    """Read any supported table; every failure is a DataError with one line of explanation."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"data file not found: {path}")
    if not path.is_file():
        raise DataError(f"not a file: {path}")
    fmt = detect_format(path)
    sha = file_sha256(path)
    bad = 0
    try:
        if fmt == "parquet":
            frame = pd.read_parquet(path)
        else:
            text, bad = _decode(path.read_bytes(), path, strict)
            if not text.strip():
                raise DataError(f"data file is empty: {path}")
            if fmt in ("csv", "tsv"):
                frame = pd.read_csv(
                    io.StringIO(text),
                    sep="\t" if fmt == "tsv" else ",",
                    dtype=str,
                    keep_default_na=False,
                    na_values=[""],
                )
            elif fmt == "jsonl":
                frame = pd.read_json(io.StringIO(text), lines=True, dtype=False)
            else:
                frame = _read_json(text, path)
    except DataError:
        raise
    except (ValueError, pd.errors.ParserError, OSError, json.JSONDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"cannot parse {path} as {fmt}: {first}") from None
    except Exception as exc:  # pyarrow raises its own types for a corrupt parquet file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"cannot read {path} as {fmt}: {first}") from None
    frame.columns = [str(c) for c in frame.columns]
    return RawTable(frame=frame, path=path, sha256=sha, non_utf8_bytes=bad)


def _read_json(text: str, path: Path) -> pd.DataFrame:
    """A JSON file is a list of records or {"column": [...]}; anything else is refused."""
    data = json.loads(text)
    if isinstance(data, list):
        if not all(isinstance(r, dict) for r in data):
            raise DataError(f"{path}: a JSON list must hold objects (one per review)")
        return pd.DataFrame.from_records(data)
    if isinstance(data, dict):
        for key in ("data", "records", "reviews"):
            if isinstance(data.get(key), list):
                return _read_json(json.dumps(data[key]), path)
        return pd.DataFrame(data)
    raise DataError(f"{path}: JSON must be a list of records or an object of columns")


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write by extension, atomically (temp name then rename)."""
    fmt = detect_format(path)
    tmp = path.with_name(f".{path.name}.tmp")
    if fmt == "parquet":
        frame.to_parquet(tmp, index=False)
    elif fmt in ("csv", "tsv"):
        frame.to_csv(tmp, index=False, sep="\t" if fmt == "tsv" else ",")
    elif fmt == "jsonl":
        frame.to_json(tmp, orient="records", lines=True, force_ascii=False)
    else:
        frame.to_json(tmp, orient="records", force_ascii=False)
    tmp.replace(path)
