"""`medsent predict --engine dask`: Parquet shards scored on a Dask cluster, one output part per shard.

Each task scores one shard into ``OUTDIR/<shard>.parquet`` (temp name, then renamed), so a part
exists whole or not at all. Each worker process loads the run once and keeps it for every shard it
is given. A task that fails (or whose worker dies) is retried by the scheduler, up to ``RETRIES``
times. Parts already written by an earlier job of the same run over the same shards are skipped;
``_medsent_job.json`` in OUTDIR records which run and shards the parts belong to.
"""

from __future__ import annotations

import ctypes
import glob
import json
import os
from pathlib import Path
from typing import Any

from medsent.core.errors import ConfigError, DataError, RunError

JOB_FILE = "_medsent_job.json"
RETRIES = 3
_LOADED: dict[str, Any] = {}  # per worker process: run folder -> Predictor


def _undo_malloc_trim() -> bool:
    """Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536`` (to hand freed memory back
    to the OS). Setting it also freezes glibc's mmap threshold at 128 KiB (mallopt(3)), so every
    large tensor is a fresh mmap paid in page faults: TextCNN scored one shard at 2,039 reviews/s
    with it against 4,799 without. The worker raises both thresholds again (glibc only); returns
    whether it did."""
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to undo
        return False
    # mallopt returns 1 on success: M_TRIM_THRESHOLD (-1), M_MMAP_THRESHOLD (-3).
    return bool(libc.mallopt(-1, 256 << 20)) and bool(libc.mallopt(-3, 32 << 20))


def _predictor(run_dir: str, run_key: str) -> Any:
    """The worker's copy of the run, with one backend thread per task as in ``--workers``
    (workers are meant one per core: ``dask worker ... --nthreads 1``)."""
    from medsent.inference.batch import worker_predictor

    key = f"{run_dir}:{run_key}"
    if key not in _LOADED:
        _undo_malloc_trim()
        _LOADED.clear()
        _LOADED[key] = worker_predictor(run_dir)
    return _LOADED[key]


def score_shard(shard: str, out: str, run_dir: str, run_key: str, text_col: str | None) -> int:
    """One shard into one Parquet part; returns its rows. Runs on a Dask worker."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from medsent.inference.batch import score_frame

    predictor = _predictor(run_dir, run_key)
    target = Path(out)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    writer = None
    rows = 0
    try:
        for batch in pq.ParquetFile(shard).iter_batches(batch_size=10_000):
            scored = score_frame(predictor, batch.to_pandas(), text_col)
            table = pa.Table.from_pandas(scored, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table.cast(writer.schema))
            rows += len(scored)
        if writer is None:  # an empty shard still gets its (empty) part
            pq.write_table(pa.table({}), tmp)
    finally:
        if writer is not None:
            writer.close()
    os.replace(tmp, target)
    return rows


def _shards(pattern: str) -> list[Path]:
    paths = sorted(Path(p) for p in glob.glob(pattern))
    if not paths:
        raise DataError(f"no files match '{pattern}'")
    bad = [p.name for p in paths if p.suffix.lower() != ".parquet"]
    if bad:
        raise DataError(f"the dask engine reads Parquet shards; not Parquet: {', '.join(bad[:3])}")
    return paths


def _check_text_column(shards: list[Path], text_col: str | None, default: str) -> None:
    import pyarrow.parquet as pq

    for shard in shards:
        try:
            names = pq.read_schema(shard).names
        except Exception as exc:  # pyarrow's own error types for a file that is not Parquet
            raise DataError(
                f"{shard.name} is not a readable Parquet file: {str(exc).splitlines()[0]}"
            ) from None
        if not any(c in names for c in (text_col, default, "review", "text") if c):
            raise DataError(
                f"{shard.name}: no text column '{text_col or default}' (columns found: {', '.join(names)})"
            )


def _client(scheduler: str | None, workers: int) -> Any:
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError("the dask engine needs dask[distributed]: pip install 'medsent[dask]'") from None
    if scheduler is None:
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
        return Client(cluster)
    try:
        return Client(scheduler, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise DataError(
            f"cannot reach the Dask scheduler at {scheduler}: {str(exc).splitlines()[0]}"
        ) from None


def predict_shards(
    run_dir: Path, pattern: str, outdir: Path, text_col: str | None, scheduler: str | None, workers: int = 2
) -> dict[str, Any]:
    """Score every shard matching ``pattern`` into ``outdir``; returns rows, shards and skipped parts."""
    from medsent.core.runs import run_id
    from medsent.inference.batch import _fingerprint
    from medsent.inference.predict import Predictor

    predictor = Predictor(run_dir)  # a bad run fails here, before the cluster starts
    shards = _shards(pattern)
    _check_text_column(shards, text_col, predictor.config.data.text_col)
    names = [s.stem for s in shards]
    if len(set(names)) != len(names):
        raise DataError("two shards share a file name; their parts would overwrite each other")
    key = run_id(predictor.run_dir)
    fingerprints = {s.name: _fingerprint(s) for s in shards}
    job: dict[str, Any] = {"run_id": key, "run": str(run_dir.resolve()), "shards": fingerprints}
    outdir.mkdir(parents=True, exist_ok=True)
    job_path = outdir / JOB_FILE
    if job_path.exists():
        earlier = json.loads(job_path.read_text(encoding="utf-8"))
        if earlier.get("run_id") != key or any(
            earlier.get("shards", {}).get(name) not in (None, fp) for name, fp in fingerprints.items()
        ):
            raise RunError(
                f"{outdir} holds parts of another run or other shards; choose another output folder"
            )
    job_path.write_text(json.dumps(job, indent=2), encoding="utf-8")
    todo = [(s, outdir / f"{s.stem}.parquet") for s in shards if not (outdir / f"{s.stem}.parquet").exists()]
    rows = 0
    if todo:
        client = _client(scheduler, workers)
        try:
            futures = client.map(
                score_shard,
                [str(s) for s, _ in todo],
                [str(o) for _, o in todo],
                run_dir=str(run_dir.resolve()),
                run_key=key,
                text_col=text_col,
                retries=RETRIES,
                pure=False,
            )
            rows = sum(client.gather(futures))
        finally:
            cluster = getattr(client, "cluster", None)
            client.close()
            if scheduler is None and cluster is not None:
                cluster.close()
    return {"rows": rows, "shards": len(shards), "skipped": len(shards) - len(todo), "outdir": str(outdir)}
