"""The plain Hugging Face Trainer recipe medsent is compared with: same encoder, reviews and epochs.

Tutorial-style: tokenize padded to max_length 256, AutoModelForSequenceClassification, lr 5e-5,
linear decay, batch 32, bf16 where the device has it, no evaluation during training. Prints one JSON
line: wall seconds (model load included), train samples/s, validation macro-F1 and kappa.

Usage: python benchmarks/hf_trainer_baseline.py TRAIN.csv VAL.csv --epochs 4 [--pretrained minilm]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    from sklearn.metrics import cohen_kappa_score, f1_score
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments

    from medsent.core.config import build_config
    from medsent.data.dataset import load_labeled
    from medsent.data.presets import preset_layer
    from medsent.neural.hf import resolve_pretrained

    parser = argparse.ArgumentParser()
    parser.add_argument("train")
    parser.add_argument("val")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--pretrained", default="minilm")
    parser.add_argument("--max-length", type=int, default=256)
    args = parser.parse_args()
    start = time.perf_counter()
    cfg = build_config({"data": preset_layer("webmd")})
    train = load_labeled(args.train, cfg.data, cfg.clean).frame
    val = load_labeled(args.val, cfg.data, cfg.clean).frame
    path = resolve_pretrained(args.pretrained)
    tok = AutoTokenizer.from_pretrained(path)
    bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()

    class Encoded(torch.utils.data.Dataset):  # type: ignore[type-arg]
        def __init__(self, texts: list[str], labels: np.ndarray) -> None:
            self.enc = tok(texts, padding="max_length", truncation=True, max_length=args.max_length)
            self.labels = labels

        def __len__(self) -> int:
            return len(self.labels)

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            item = {k: torch.tensor(v[i]) for k, v in self.enc.items()}
            item["labels"] = torch.tensor(int(self.labels[i]))
            return item

    train_ds = Encoded(train["text"].tolist(), train["label"].to_numpy())
    val_ds = Encoded(val["text"].tolist(), val["label"].to_numpy())
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=3)
    with tempfile.TemporaryDirectory() as out:
        targs = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=args.batch,
            per_device_eval_batch_size=128,
            num_train_epochs=args.epochs,
            learning_rate=5e-5,
            bf16=bf16,
            use_cpu=not torch.cuda.is_available(),
            save_strategy="no",
            eval_strategy="no",
            logging_strategy="no",
            report_to=[],
            dataloader_num_workers=0,
            disable_tqdm=True,
        )
        trainer = Trainer(model=model, args=targs, train_dataset=train_ds)
        result = trainer.train()
        pred = trainer.predict(val_ds).predictions.argmax(axis=1)
    y = val["label"].to_numpy()
    print(
        json.dumps(
            {
                "recipe": "hf_trainer",
                "epochs": args.epochs,
                "train_reviews": len(train),
                "wall_s": time.perf_counter() - start,
                "train_s": float(result.metrics["train_runtime"]),
                "train_samples_per_s": float(result.metrics["train_samples_per_second"]),
                "val_macro_f1": float(f1_score(y, pred, average="macro")),
                "val_kappa": float(cohen_kappa_score(y, pred)),
                "bf16": bf16,
            }
        )
    )


if __name__ == "__main__":
    main()
