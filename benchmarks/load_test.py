"""Load test of `medsent serve`: the real server on 127.0.0.1, N concurrent clients, a fixed number
of requests; it stops by itself. Prints p50 / p99 latency, throughput and errors (must be 0).

Usage: .venv/bin/python benchmarks/load_test.py RUN_DIR [--clients 32] [--requests 5000] [--workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

VAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "webmd" / "webmd_val.csv"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(run: Path, port: int, workers: int, threads: int | None) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-c", "from medsent.interfaces.cli import main; main()", "serve", str(run), "--port", str(port),
           "--workers", str(workers)]  # fmt: skip
    if threads:
        cmd += ["--threads", str(threads)]
    proc = subprocess.Popen(cmd)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json().get("status") == "ok":
                return proc
        except (httpx.HTTPError, ValueError):
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("server did not start")


async def load(port: int, texts: list[str], clients: int, total: int) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    errors = 0
    counter = iter(range(total))

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal errors
        for i in counter:
            start = time.perf_counter()
            try:
                r = await http.post("/v1/predict", json={"text": texts[i % len(texts)]})
                ok = r.status_code == 200
                if not ok:
                    print(f"error: HTTP {r.status_code} {r.text[:200]}", file=sys.stderr)
            except httpx.HTTPError as exc:
                ok = False
                print(f"error: {type(exc).__name__} {exc}", file=sys.stderr)
            latencies.append((time.perf_counter() - start) * 1000)
            errors += not ok

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=60) as http:
        start = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        wall = time.perf_counter() - start
    return latencies, errors, wall


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    texts = [t for t in pd.read_csv(VAL, dtype=str, keep_default_na=False)["review"] if len(t.split()) >= 3]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {args.clients} clients, "
          f"{args.requests} requests of single WebMD validation reviews, {args.workers} worker(s)")  # fmt: skip
    print("| run | backend | p50 ms | p99 ms | requests/s | errors |")
    print("|---|---|---:|---:|---:|---:|")
    for run in args.runs:
        port = free_port()
        proc = start_server(run, port, args.workers, args.threads)
        try:
            backend = httpx.get(f"http://127.0.0.1:{port}/v1/model").json()["backend"]
            lat, errors, wall = asyncio.run(load(port, texts, args.clients, args.requests))
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
        print(f"| {run.name} | {backend} | {np.percentile(lat, 50):.1f} | {np.percentile(lat, 99):.1f} | "
              f"{len(lat) / wall:.0f} | {errors} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
