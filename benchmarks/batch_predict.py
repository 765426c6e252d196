"""Streaming batch prediction at scale: reviews/s and peak memory of `medsent predict --input`.

Builds files of N rows by repeating the WebMD pool (written to a temp folder, never committed), then
runs the real command in a child process and reads the child's peak RSS from the kernel
(getrusage). Peak memory must not grow with N: compare 100k and 1M rows.

Usage: .venv/bin/python benchmarks/batch_predict.py RUN_DIR [RUN_DIR...] [--rows 100000 1000000]
       [--workers 1 2] [--engine local|dask]
``--engine dask`` splits each file into 10 Parquet shards and runs ``--engine dask`` on a local
cluster of ``--workers`` processes (one machine: it measures the engine's overhead, not a cluster).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

POOL = Path(__file__).resolve().parents[2] / "shared" / "data" / "webmd" / "webmd_reviews.csv"


def build_file(rows: int, folder: Path) -> Path:
    path = folder / f"reviews_{rows}.csv"
    if path.exists():
        return path
    pool = pd.read_csv(POOL, dtype=str, keep_default_na=False)
    pool = pool[pool["review"].str.strip() != ""][["review", "drug", "condition"]].reset_index(drop=True)
    written = 0
    with path.open("w", encoding="utf-8", newline="") as fh:
        while written < rows:
            part = pool.iloc[: rows - written].copy()
            part.insert(0, "row_id", range(written, written + len(part)))
            part.to_csv(fh, header=written == 0, index=False)
            written += len(part)
    return path


def build_shards(src: Path, shards: int = 10) -> Path:
    folder = src.with_suffix(".shards")
    if not folder.exists():
        tmp = folder.with_name(folder.name + ".tmp")
        tmp.mkdir()
        frame = pd.read_csv(src, dtype=str, keep_default_na=False)
        step = -(-len(frame) // shards)
        for i in range(shards):
            frame.iloc[i * step : (i + 1) * step].to_parquet(tmp / f"part-{i:03d}.parquet", index=False)
        tmp.rename(folder)
    return folder


def count_rows(dst: Path) -> int:
    if dst.is_dir():
        return sum(len(pd.read_parquet(p, columns=["row_id"])) for p in dst.glob("*.parquet"))
    return len(pd.read_csv(dst, usecols=["row_id"]))


def run_once(run_dir: Path, src: Path, dst: Path, workers: str, engine: str) -> tuple[float, float]:
    """Seconds and the peak RSS in MiB of the largest process (RUSAGE_CHILDREN covers the command
    and, through it, its worker processes: the largest single process, not their sum)."""
    target = f"{build_shards(src)}/*.parquet" if engine == "dask" else str(src)
    cmd = [sys.executable, "-c", "from medsent.interfaces.cli import main; main()", "predict", str(run_dir),
           "--input", target, "--output", str(dst), "--workers", workers, "--engine", engine]  # fmt: skip
    env = {**os.environ, "TQDM_DISABLE": "1"}
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return seconds, peak


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--rows", nargs="+", type=int, default=[100_000, 1_000_000])
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--workers", nargs="+", default=["1", "2"], help="worker processes to compare")
    ap.add_argument("--engine", choices=["local", "dask"], default="local")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="medsent-batch-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}")
    print(
        "| run | backend | engine | workers | rows | seconds | reviews/s | peak RSS MiB (largest process) |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for run in args.runs:
        from medsent.inference.predict import Predictor

        backend = Predictor(run).backend
        for workers in args.workers:
            for rows in sorted(args.rows):
                src = build_file(rows, work)
                dst = (
                    work / f"pred_{run.name}_{rows}"
                    if args.engine == "dask"
                    else work / f"pred_{run.name}_{rows}.csv"
                )
                # A fresh interpreter per measurement, so RUSAGE_CHILDREN's max is this run's own peak.
                out = subprocess.run(
                    [sys.executable, __file__, "--_child", str(run), str(src), str(dst), workers, args.engine],
                    check=True, capture_output=True, text=True,
                )  # fmt: skip
                seconds, peak = map(float, out.stdout.split())
                n = count_rows(dst)
                print(
                    f"| {run.name} | {backend} | {args.engine} | {workers} | {rows:,} | {seconds:.1f} | {rows / seconds:,.0f} "
                    f"| {peak:,.0f} |",
                    flush=True,
                )
                if n != rows:
                    raise SystemExit(f"expected {rows} predictions, found {n}")
                shutil.rmtree(dst) if dst.is_dir() else dst.unlink()


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "--_child":
        s, p = run_once(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]), sys.argv[5], sys.argv[6])
        print(s, p)
    else:
        main()
