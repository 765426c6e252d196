"""SVM baseline on WebMD: cleaning report, validation metrics, fit time, predict throughput.

Usage: .venv/bin/python benchmarks/svm_baseline.py [--out runs/bench-svm]
Pool (webmd_reviews.csv) = training, webmd_val.csv = validation, no test carved.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

from medsent.core.config import build_config
from medsent.data.dataset import load_labeled
from medsent.data.presets import preset_layer
from medsent.inference.predict import Predictor
from medsent.training.train import train_run

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "webmd"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("runs/bench-svm"))
    args = parser.parse_args()
    cfg = build_config({"model": "svm", "data": preset_layer("webmd"), "split": {"test_frac": 0}})
    start = time.perf_counter()
    result = train_run(
        cfg, DATA / "webmd_reviews.csv", args.out, val_path=DATA / "webmd_val.csv", overwrite=True
    )
    total = time.perf_counter() - start
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}"
    )
    pool = load_labeled(DATA / "webmd_reviews.csv", cfg.data, cfg.clean)
    print("\ncleaning report (pool):")
    print(pool.report.to_markdown())
    m = result.metrics["val"]
    print(
        f"\nval n={m['n']}: macro-F1 {m['macro_f1']:.4f}  accuracy {m['accuracy']:.4f}  "
        f"kappa {m['kappa']:.4f}  ECE {m['ece']:.4f}"
    )
    print("per-class F1: " + "  ".join(f"{k} {v['f1']:.4f}" for k, v in m["per_class"].items()))
    print(f"fit: {result.fit_seconds:.1f} s  (whole train command incl. loading/cleaning: {total:.1f} s)")
    predictor = Predictor(result.run_dir)
    texts = pool.frame["text"].tolist()
    predictor.predict_proba(texts[:100])
    start = time.perf_counter()
    predictor.predict_proba(texts)
    elapsed = time.perf_counter() - start
    print(f"predict: {len(texts) / elapsed:.0f} reviews/s over {len(texts)} raw reviews (cleaning included)")


if __name__ == "__main__":
    main()
