"""Scoring a file of reviews in chunks, keeping the input's columns and adding the prediction.

Each chunk's predictions are written as a part file (temp name, then renamed) in a job folder beside
the output, ``.OUTPUT.parts/``; the output itself only appears, complete, when the parts are joined
at the end. A killed job therefore never leaves a truncated file under the final name, and
``resume=True`` continues from the last complete part: the job folder records which run and which
input it belongs to, and refuses to mix. Joining parts gives the same bytes (CSV/TSV/JSONL) or rows
(Parquet) as an uninterrupted run. With ``workers`` > 1, chunks are scored by that many worker
processes (each loads the run once) and joined in input order.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medsent._version import __version__
from medsent.core.errors import DataError, RunError
from medsent.data.clean import is_blank
from medsent.data.io import detect_format
from medsent.inference.decisions import tier_of
from medsent.inference.predict import Predictor

log = logging.getLogger(__name__)

CHUNK_ROWS = 10_000
OUTPUT_FORMATS = ("csv", "tsv", "jsonl", "parquet")
JOB_FILE = "job.json"


def _chunks(path: Path, fmt: str, rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """The input in chunks of ``rows``; a file the parser cannot read (binary, malformed) is a
    one-line DataError, wherever in the file the parser gives up."""
    try:
        yield from _raw_chunks(path, fmt, rows)
    except DataError:
        raise
    except Exception as exc:  # pandas, json and pyarrow each raise their own types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"cannot parse {path} as {fmt}: {first}") from None


def _raw_chunks(path: Path, fmt: str, rows: int) -> Iterator[pd.DataFrame]:
    if fmt in ("csv", "tsv"):
        yield from pd.read_csv(
            path,
            sep="\t" if fmt == "tsv" else ",",
            dtype=str,
            keep_default_na=False,
            chunksize=rows,
            encoding_errors="replace",
        )
    elif fmt == "jsonl":
        yield from pd.read_json(path, lines=True, dtype=False, chunksize=rows)
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=rows):
            yield batch.to_pandas()
    else:
        from medsent.data.io import read_table

        frame = read_table(path).frame
        for start in range(0, len(frame), rows):
            yield frame.iloc[start : start + rows]


def text_column(frame: pd.DataFrame, wanted: str | None, default: str) -> str:
    for col in (wanted, default, "review", "text"):
        if col and col in frame.columns:
            return col
    raise DataError(
        f"no text column '{wanted or default}' in input; columns found: {', '.join(map(str, frame.columns))}"
    )


def score_frame(predictor: Predictor, chunk: pd.DataFrame, text_col: str | None) -> pd.DataFrame:
    """The chunk's columns plus label, confidence, tier and one probability column per class.

    A review with no text gets no label: it goes to the manual tier, not a confident guess.
    """
    col = text_column(chunk, text_col, predictor.config.data.text_col)
    texts = [v if isinstance(v, str) else "" for v in chunk[col]]
    blank = np.array([is_blank(t) for t in texts], dtype=bool)
    proba = np.full((len(texts), len(predictor.labels)), np.nan)
    if (~blank).any():
        proba[~blank] = predictor.predict_proba([t for t, b in zip(texts, blank, strict=True) if not b])
    out = chunk.reset_index(drop=True).copy()
    best = np.where(blank, 0, predictor.decide(np.nan_to_num(proba, nan=1.0 / proba.shape[1])))
    out["label"] = ["" if b else predictor.labels[j] for j, b in zip(best, blank, strict=True)]
    out["confidence"] = np.where(blank, np.nan, proba[np.arange(len(best)), best])
    out["tier"] = [
        "manual" if b else tier_of(float(c), predictor.config.tiers)
        for c, b in zip(out["confidence"], blank, strict=True)
    ]
    for j, name in enumerate(predictor.labels):
        out[f"p_{name.lower()}"] = proba[:, j]
    return out


def _part_path(folder: Path, index: int, fmt: str) -> Path:
    return folder / f"part-{index:06d}.{fmt}"


def write_part(frame: pd.DataFrame, path: Path, fmt: str, first: bool) -> None:
    """One chunk's predictions, written under a temp name and renamed: a part exists whole or not."""
    tmp = path.with_name(f".{path.name}.tmp")
    if fmt == "parquet":
        frame.to_parquet(tmp, index=False)
    elif fmt == "jsonl":
        with tmp.open("w", encoding="utf-8") as fh:
            frame.to_json(fh, orient="records", lines=True, force_ascii=False)
    else:
        frame.to_csv(tmp, header=first, index=False, sep="\t" if fmt == "tsv" else ",")
    os.replace(tmp, path)


def _fingerprint(path: Path) -> dict[str, Any]:
    """Which input this is, cheaply: size, mtime and the sha256 of its first and last MiB."""
    import hashlib

    st = path.stat()
    h = hashlib.sha256()
    with path.open("rb") as fh:
        h.update(fh.read(1 << 20))
        if st.st_size > 2 << 20:
            fh.seek(-(1 << 20), os.SEEK_END)
            h.update(fh.read())
    return {
        "path": str(path.resolve()),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "head_tail_sha256": h.hexdigest(),
    }


def _job(predictor: Predictor, src: Path, dst: Path, text_col: str | None, chunk_rows: int) -> dict[str, Any]:
    from medsent.core.runs import run_id

    return {
        "run": str(predictor.run_dir.resolve()),
        "run_id": run_id(predictor.run_dir),
        "input": _fingerprint(src),
        "output": str(dst.resolve()),
        "text_col": text_col,
        "chunk_rows": chunk_rows,
        "medsent_version": __version__,
    }


def _open_job(folder: Path, job: dict[str, Any], resume: bool) -> set[int]:
    """Indices of the parts already done; refuses a job folder of another run or input."""
    path = folder / JOB_FILE
    if resume and path.exists():
        try:
            earlier = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            earlier = {}
        for key, what in (("run_id", "run"), ("input", "input file"), ("chunk_rows", "chunk size")):
            if earlier.get(key) != job[key]:
                raise RunError(
                    f"the unfinished job in {folder} belongs to another {what}; "
                    "run without --resume to start over (its parts are then removed)"
                )
        return {int(p.name[5:11]) for p in folder.glob("part-*") if p.name[5:11].isdigit()}
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    from medsent.core.runs import write_json

    write_json(path, job)
    return set()


def _join_parts(folder: Path, dst: Path, fmt: str, count: int, src: Path) -> None:
    """The parts in order into dst, through a temp file and one rename."""
    tmp = dst.with_name(f".{dst.name}.joining")
    try:
        if fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            writer = None
            total = 0
            try:
                for i in range(count):
                    table = pq.read_table(_part_path(folder, i, fmt))
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, table.schema)
                    elif table.schema != writer.schema:
                        try:
                            table = table.cast(writer.schema)
                        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
                            raise DataError(
                                f"{src.name}: column types change between rows {total} and "
                                f"{total + table.num_rows}; write CSV or JSONL instead"
                            ) from None
                    writer.write_table(table)
                    total += table.num_rows
            finally:
                if writer is not None:
                    writer.close()
        else:
            with tmp.open("wb") as out:
                for i in range(count):
                    with _part_path(folder, i, fmt).open("rb") as part:
                        shutil.copyfileobj(part, out, 1 << 20)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# Worker processes: each loads the run once (initializer) and scores whole chunks into part files.
_WORKER: dict[str, Any] = {}


def worker_predictor(run_dir: str, use_onnx: bool = True, threads: int = 1) -> Predictor:
    """A run loaded in a worker process whose parallelism comes from its siblings: each worker's
    backends get ``threads`` threads, or N workers on N cores fight over N x N threads."""
    import torch

    torch.set_num_threads(threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    return Predictor(run_dir, use_onnx=use_onnx)


def _init_worker(run_dir: str, use_onnx: bool, threads: int) -> None:
    _WORKER["predictor"] = worker_predictor(run_dir, use_onnx, threads)


def _score_part(chunk: pd.DataFrame, text_col: str | None, path: str, fmt: str, first: bool) -> int:
    out = score_frame(_WORKER["predictor"], chunk, text_col)
    write_part(out, Path(path), fmt, first)
    return len(out)


def resolve_workers(workers: int | str) -> int:
    """``auto``: one worker process per core (at most 8); else the number given."""
    if workers == "auto":
        return max(1, min(os.cpu_count() or 1, 8))
    try:
        n = int(workers)
    except ValueError:
        n = 0
    if n < 1:
        raise DataError(f"--workers must be a positive number or auto, got '{workers}'")
    return n


def predict_file(
    predictor: Predictor,
    src: Path,
    dst: Path,
    text_col: str | None = None,
    progress: bool = True,
    resume: bool = False,
    workers: int = 1,
    chunk_rows: int = CHUNK_ROWS,
) -> int:
    """Stream src through the model into dst; returns the number of rows written."""
    if not src.is_file():
        raise DataError(f"input file not found: {src}")
    fmt_in, fmt_out = detect_format(src), detect_format(dst)
    if fmt_out not in OUTPUT_FORMATS:
        raise DataError(
            f"output format {dst.suffix} not supported for predictions; use csv, tsv, jsonl or parquet"
        )
    folder = dst.parent / f".{dst.name}.parts"
    done = _open_job(folder, _job(predictor, src, dst, text_col, chunk_rows), resume)
    if done:
        log.info("resuming: %d chunk(s) already scored in %s", len(done), folder)
    from tqdm.auto import tqdm

    bar = tqdm(unit=" rows", unit_scale=True, desc=f"predict {src.name}", disable=not progress or None)
    total = 0
    count = 0
    pool: ProcessPoolExecutor | None = None
    pending: dict[Future[int], int] = {}
    try:
        for i, chunk in enumerate(_chunks(src, fmt_in, chunk_rows)):
            count = i + 1
            text_column(chunk, text_col, predictor.config.data.text_col)  # a bad file fails here, at once
            if i in done:
                total += len(chunk)
                bar.update(len(chunk))
                continue
            part = _part_path(folder, i, fmt_out)
            if pool is None and workers > 1 and i >= 1:  # a second chunk: worth starting the workers
                import multiprocessing

                pool = ProcessPoolExecutor(
                    workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_init_worker,
                    initargs=(str(predictor.run_dir), True, 1),
                )
            if pool is None:
                write_part(score_frame(predictor, chunk, text_col), part, fmt_out, first=i == 0)
                total += len(chunk)
                bar.update(len(chunk))
                continue
            while len(pending) >= 2 * workers:  # bounded: memory stays flat however big the input
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    rows = fut.result()
                    total += rows
                    bar.update(rows)
                    del pending[fut]
            pending[pool.submit(_score_part, chunk, text_col, str(part), fmt_out, i == 0)] = i
        for fut in list(pending):
            rows = fut.result()
            total += rows
            bar.update(rows)
        pending.clear()
        if count == 0 or total == 0:
            raise DataError(f"input file {src} holds no rows")
        _join_parts(folder, dst, fmt_out, count, src)
        shutil.rmtree(folder, ignore_errors=True)
    except BaseException:
        if not any(folder.glob("part-*")):  # nothing worth resuming
            shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return total
