"""Scoring a file of reviews in chunks, keeping the input's columns and adding the prediction."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from medsent.data.io import detect_format
from medsent.errors import DataError
from medsent.evaluation.tiers import tier_of
from medsent.predict import Predictor

CHUNK_ROWS = 10_000


def _chunks(path: Path, fmt: str) -> Iterator[pd.DataFrame]:
    if fmt in ("csv", "tsv"):
        yield from pd.read_csv(
            path,
            sep="\t" if fmt == "tsv" else ",",
            dtype=str,
            keep_default_na=False,
            chunksize=CHUNK_ROWS,
            encoding_errors="replace",
        )
    elif fmt == "jsonl":
        yield from pd.read_json(path, lines=True, dtype=False, chunksize=CHUNK_ROWS)
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=CHUNK_ROWS):
            yield batch.to_pandas()
    else:
        from medsent.data.io import read_table

        frame = read_table(path).frame
        for start in range(0, len(frame), CHUNK_ROWS):
            yield frame.iloc[start : start + CHUNK_ROWS]


def _text_column(frame: pd.DataFrame, wanted: str | None, default: str) -> str:
    for col in (wanted, default, "review", "text"):
        if col and col in frame.columns:
            return col
    raise DataError(
        f"no text column '{wanted or default}' in input; columns found: {', '.join(frame.columns)}"
    )


def predict_file(
    predictor: Predictor, src: Path, dst: Path, text_col: str | None = None, progress: bool = True
) -> int:
    """Stream src through the model into dst (written under a temp name, renamed at the end)."""
    if not src.is_file():
        raise DataError(f"input file not found: {src}")
    fmt_in, fmt_out = detect_format(src), detect_format(dst)
    if fmt_out not in ("csv", "tsv", "jsonl", "parquet"):
        raise DataError(
            f"output format {dst.suffix} not supported for predictions; use csv, tsv, jsonl or parquet"
        )
    tmp = dst.with_name(f".{dst.name}.partial")
    total = 0
    writer = None
    from tqdm.auto import tqdm

    bar = tqdm(unit=" rows", unit_scale=True, desc=f"predict {src.name}", disable=not progress or None)
    try:
        for i, chunk in enumerate(_chunks(src, fmt_in)):
            col = _text_column(chunk, text_col, predictor.config.data.text_col)
            texts = [v if isinstance(v, str) else "" for v in chunk[col]]
            blank = np.array([not t.strip() for t in texts], dtype=bool)
            proba = np.full((len(texts), len(predictor.labels)), np.nan)
            if (~blank).any():
                proba[~blank] = predictor.predict_proba(
                    [t for t, b in zip(texts, blank, strict=True) if not b]
                )
            out = chunk.reset_index(drop=True).copy()
            best = np.where(blank, 0, predictor.decide(np.nan_to_num(proba, nan=1.0 / proba.shape[1])))
            # A review with no text gets no label: it goes to the manual tier, not a confident guess.
            out["label"] = ["" if b else predictor.labels[j] for j, b in zip(best, blank, strict=True)]
            out["confidence"] = np.where(blank, np.nan, proba[np.arange(len(best)), best])
            out["tier"] = [
                "manual" if b else tier_of(float(c), predictor.config.tiers)
                for c, b in zip(out["confidence"], blank, strict=True)
            ]
            for j, name in enumerate(predictor.labels):
                out[f"p_{name.lower()}"] = proba[:, j]
            total += len(out)
            bar.update(len(out))
            if fmt_out == "parquet":
                import pyarrow as pa
                import pyarrow.parquet as pq

                table = pa.Table.from_pandas(out, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema)
                elif table.schema != writer.schema:
                    try:
                        table = table.cast(writer.schema)
                    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
                        raise DataError(
                            f"{src.name}: column types change between rows {total - len(out)} and {total}; "
                            "write CSV or JSONL instead"
                        ) from None
                writer.write_table(table)
            elif fmt_out == "jsonl":
                with tmp.open("a" if i else "w", encoding="utf-8") as fh:
                    out.to_json(fh, orient="records", lines=True, force_ascii=False)
            else:
                out.to_csv(
                    tmp,
                    mode="a" if i else "w",
                    header=i == 0,
                    index=False,
                    sep="\t" if fmt_out == "tsv" else ",",
                )
        bar.close()
        if writer is not None:
            writer.close()
        if total == 0:
            raise DataError(f"input file {src} holds no rows")
        tmp.replace(dst)
    except BaseException:
        bar.close()
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
        raise
    return total
