"""Transformer inference on the CPU: single-review p50 and batch reviews/s, by number format.

For each transformer run: PyTorch float32, PyTorch under bf16 autocast, the float32 ONNX graph and
its int8-weight form (onnxruntime dynamic quantization, as `medsent export --quantize int8` writes
it), all through the same Predictor (cleaning, tokenisation, length-sorted batches). Speed only:
what int8 does to the answers is the export's own check (export.json `int8_check`).

Usage:
  .venv/bin/python benchmarks/transformer_inference.py RUN [RUN...] [--n 300] [--singles 50]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

VAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "webmd" / "webmd_val.csv"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["MEDSENT_ONNX_MAX_ROWS"] = str(1 << 30)  # a graph answers every batch, never PyTorch


def measure(predictor, texts: list[str], singles: int, bf16: bool = False) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(single-review p50 ms, batch reviews/s)."""
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with ctx:
        for t in texts[:3]:
            predictor.predict_proba([t])
        times = []
        for t in texts[:singles]:
            start = time.perf_counter()
            predictor.predict_proba([t])
            times.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        predictor.predict_proba(texts)
        rate = len(texts) / (time.perf_counter() - start)
    return float(np.median(times)), rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--n", type=int, default=300, help="validation reviews in the batch")
    ap.add_argument("--singles", type=int, default=50, help="single-review calls timed")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--skip",
        nargs="*",
        default=[],
        help="leave out engines whose name holds one of these words (bf16, pytorch, ...)",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from medsent.inference.export import export_run
    from medsent.inference.predict import Predictor

    texts = pd.read_csv(VAL)["review"].dropna().astype(str).sample(args.n, random_state=0).tolist()
    flags = "native bf16" if torch.cpu._is_avx512_bf16_supported() else "no native bf16"
    print(
        f"# {platform.machine()}, {os.cpu_count()} cores, {args.threads} threads, "
        f"{torch.backends.cpu.get_cpu_capability()} ({flags}); batch of {len(texts)} webmd_val reviews"
    )
    print("| run | engine | p50 ms, one review | batch reviews/s | graph MB |")
    print("|---|---|---:|---:|---:|")
    for run in args.runs:
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / run.name
            shutil.copytree(run, copy, ignore=shutil.ignore_patterns("onnx"))
            export_run(copy, "onnx")
            graph = copy / "onnx" / "model.onnx"
            fp32, int8 = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
            shutil.copyfile(graph, fp32)
            quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True)
            engines: list[tuple[str, Path | None, bool]] = [
                ("pytorch fp32", None, False),
                ("pytorch bf16 autocast", None, True),
                ("onnxruntime fp32", fp32, False),
                ("onnxruntime int8", int8, False),
            ]
            for name, path, bf16 in engines:
                if any(word in name for word in args.skip):
                    continue
                if path is None:
                    predictor = Predictor(copy, use_onnx=False)
                else:
                    shutil.copyfile(path, graph)
                    predictor = Predictor(copy)
                p50, rate = measure(predictor, texts, args.singles, bf16)
                size = f"{path.stat().st_size / 2**20:.0f}" if path else ""
                print(f"| {run.name} | {name} | {p50:.1f} | {rate:.1f} | {size} |", flush=True)


if __name__ == "__main__":
    main()
