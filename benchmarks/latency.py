"""Single-review CPU latency (p50 / p90 of 200 calls) per run, PyTorch and onnxruntime side by side.

Usage: .venv/bin/python benchmarks/latency.py RUN_DIR [RUN_DIR...] [--threads 2]
Runs with an ONNX export (`medsent export RUN`) are timed both ways; MEDSENT_ONNX=0 forces PyTorch.
`graph` is the export's form (a TextCNN's lookup tables, or the network as trained with --compact);
`load s` is the Predictor's load time (the onnxruntime session included).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

VAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "webmd" / "webmd_val.csv"
# 63 MiniLM tokens, the length of the reference latency figures in BENCHMARKS.md.
FIXED = (
    "I have been taking this medication for about three months for my blood pressure. It works well and "
    "my readings are normal now, but I get dizzy when I stand up too fast and feel tired in the afternoon."
)


def time_calls(predictor, texts: list[str]) -> np.ndarray:  # type: ignore[no-untyped-def]
    for t in texts[:10]:
        predictor.predict_proba([t])
    out = []
    for t in texts:
        start = time.perf_counter()
        predictor.predict_proba([t])
        out.append((time.perf_counter() - start) * 1000)
    return np.asarray(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--n", type=int, default=200)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from medsent.inference.onnx import onnx_path, read_export
    from medsent.inference.predict import Predictor

    val = pd.read_csv(VAL, dtype=str, keep_default_na=False)["review"]
    texts = [t for t in val if len(t.split()) >= 3][: args.n]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch threads {args.threads}; "
          f"{len(texts)} WebMD validation reviews, median {int(np.median([len(t.split()) for t in texts]))} words")  # fmt: skip
    print(
        "| run | backend | graph | p50 ms (200 val reviews) | p90 ms | p50 ms (fixed 63-token review) | load s |"
    )
    print("|---|---|---|---:|---:|---:|---:|")
    for run in args.runs:
        backends = ["0", "1"] if onnx_path(run).is_file() else ["0"]
        for flag in backends:
            os.environ["MEDSENT_ONNX"] = flag
            start = time.perf_counter()
            predictor = Predictor(run)
            loaded = time.perf_counter() - start
            meta = read_export(run) or {}
            graph = (
                "-"
                if flag == "0"
                else f"{meta.get('graph', 'network')} ({onnx_path(run).stat().st_size / 1e6:.0f} MB)"
            )
            lat = time_calls(predictor, texts)
            fixed = time_calls(predictor, [FIXED] * args.n)
            print(f"| {run.name} | {predictor.backend} | {graph} | {np.percentile(lat, 50):.2f} | "
                  f"{np.percentile(lat, 90):.2f} | {np.percentile(fixed, 50):.2f} | {loaded:.2f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
