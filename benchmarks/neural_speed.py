"""Training throughput: a plain PyTorch loop padded to 128 vs medsent's engine (length buckets).

Usage: .venv/bin/python benchmarks/neural_speed.py [--batches 60] [--threads 2]
Both use the real WebMD pool vocabulary, batch 64, the V2 model sizes, fp32 on the CPU.
"""

from __future__ import annotations

import argparse
import logging
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from medsent.core.config import build_config, model_preset_layer
from medsent.data.dataset import load_labeled
from medsent.data.presets import preset_layer
from medsent.inference.neural import text_view
from medsent.models.registry import get_model_spec
from medsent.neural.vocab import WordVocab
from medsent.training.fit import FitData, FitRequest, fit_neural

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "webmd"


def plain_loop(model_name: str, texts: list[str], labels: np.ndarray, batches: int) -> float:
    """The plain-loop baseline: every review padded to 128, plain Adam steps, no buckets."""
    cfg = build_config(model_preset_layer(model_name, "v2"), {"model": model_name})
    view = text_view(texts, cfg)
    vocab = WordVocab.build(view, cfg.vocab)
    ids = vocab.encode(view)
    spec = get_model_spec(model_name)
    assert spec.build is not None
    model = spec.build(vocab.size, cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(ids))
    model.train()
    start = time.perf_counter()
    for b in range(batches):
        idx = order[b * 64 : (b + 1) * 64]
        x = torch.zeros((len(idx), 128), dtype=torch.long)
        for r, i in enumerate(idx):
            seq = ids[i][:128]
            x[r, : len(seq)] = torch.tensor(seq)
        y = torch.as_tensor(labels[idx])
        loss = F.cross_entropy(model(x, x != 0), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return batches * 64 / (time.perf_counter() - start)


def engine(
    model_name: str,
    texts: list[str],
    labels: np.ndarray,
    val: tuple[list[str], np.ndarray],
    batches: int,
    buckets: list[int] | None,
) -> float:
    extra: dict[str, object] = {"vocab": {"buckets": buckets}} if buckets else {}
    cfg = build_config(
        model_preset_layer(model_name, "v2"),
        {
            **extra,
            "model": model_name,
            "trainer": {
                "max_epochs": 1,
                "batch_size": 64,
                "limit_train_batches": batches,
                "progress_bar": False,
            },
        },
    )
    with tempfile.TemporaryDirectory() as work:
        fit = fit_neural(
            FitRequest(cfg, FitData(texts, labels), FitData(val[0][:64], val[1][:64]), Path(work))
        )
    return float(fit.summary["train_samples_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", default="textcnn,bilstm")
    parser.add_argument("--buckets", default=None, help="comma-separated static lengths (default: config)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.disable(logging.WARNING)
    cfg = build_config({"data": preset_layer("webmd")})
    pool = load_labeled(DATA / "webmd_reviews.csv", cfg.data, cfg.clean).frame
    val = load_labeled(DATA / "webmd_val.csv", cfg.data, cfg.clean).frame
    texts, labels = pool["text"].tolist(), pool["label"].to_numpy()
    print(f"machine: {platform.machine()}, torch {torch.__version__}, {args.threads} threads, batch 64, fp32")
    buckets = [int(b) for b in args.buckets.split(",")] if args.buckets else None
    for name in args.models.split(","):
        plain = plain_loop(name, texts, labels, args.batches)
        ours = engine(
            name, texts, labels, (val["text"].tolist(), val["label"].to_numpy()), args.batches, buckets
        )
        print(
            f"{name}: plain loop padded to 128: {plain:.0f} samples/s; medsent engine: {ours:.0f} samples/s "
            f"({ours / plain:.2f}x)"
        )


if __name__ == "__main__":
    main()
