"""What the frozen-prefix cache saves: training step cost with and without it, and the cost of
building it, for several frozen depths K, on real pool reviews at their real lengths.

One training step is what the engine does per batch: forward, loss, backward, gradient clipping,
AdamW, on length-sorted batches of 16 padded to their longest review (the CPU default). Rates are
measured on ``--samples`` reviews and projected to the whole pool and to validation per epoch:

  epoch without cache = pool / train rate + validation / full forward rate
  epoch with cache    = pool / cached train rate + validation / upper-layers forward rate
  cache build (once)  = (pool + validation) / prefix forward rate

Usage:
  .venv/bin/python benchmarks/prefix_cache.py --encoder mpnet --k 4 6 8 --samples 64
  .venv/bin/python benchmarks/prefix_cache.py --encoder mpnet --k 6 --precision bf16
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from functools import partial
from pathlib import Path

import pandas as pd
import torch

from medsent.core.config import TransformerConfig
from medsent.neural.hf import HFTextEncoder, build_transformer, freeze
from medsent.training.prefix_cache import padded

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "webmd"
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--encoder", default="mpnet")
    ap.add_argument("--k", type=int, nargs="+", default=[4, 6, 8])
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--precision", choices=["32", "bf16"], default="32")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pool-size", type=int, default=17025, help="reviews per epoch after cleaning")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    pool = pd.read_csv(DATA / "webmd_reviews.csv")["review"].dropna().astype(str)
    val = pd.read_csv(DATA / "webmd_val.csv")["review"].dropna().astype(str)
    texts = pool.sample(args.samples, random_state=0).tolist()
    bf16 = args.precision == "bf16"
    cpu = platform.processor() or platform.machine()
    flags = "avx512_bf16" if torch.cpu._is_avx512_bf16_supported() else "no native bf16"
    print(
        f"# {args.encoder}, {args.threads} threads, {cpu} ({torch.backends.cpu.get_cpu_capability()}, {flags})"
    )
    print(f"# {args.samples} pool reviews, batch {args.batch}, precision {args.precision}")
    print(
        "| K | train rev/s | cached train rev/s | prefix fwd rev/s | full fwd rev/s | upper fwd rev/s "
        "| epoch min | cached epoch min | cache build min |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for k in args.k:
        cfg = TransformerConfig(
            pretrained=args.encoder, freeze_layers=k, freeze_embeddings=True, max_length=args.max_length
        )
        bench = Bench(cfg, HFTextEncoder.load(args.encoder, cfg).encode(texts), args.batch, bf16)
        r_prefix = bench.rate(bench.prefix)
        r_train = bench.rate(partial(bench.step, cached=False))
        r_cached = bench.rate(partial(bench.step, cached=True))
        r_full = bench.rate(partial(bench.forward, cached=False))
        r_upper = bench.rate(partial(bench.forward, cached=True))
        n_pool, n_val = args.pool_size, len(val)
        epoch = (n_pool / r_train + n_val / r_full) / 60
        cached_epoch = (n_pool / r_cached + n_val / r_upper) / 60
        build = (n_pool + n_val) / r_prefix / 60
        print(
            f"| {k} | {r_train:.2f} | {r_cached:.2f} | {r_prefix:.2f} | {r_full:.2f} | {r_upper:.2f} "
            f"| {epoch:.0f} | {cached_epoch:.0f} | {build:.0f} |",
            flush=True,
        )


class Bench:
    """One encoder frozen up to layer K, its length-sorted batches and their cached prefixes."""

    def __init__(self, cfg: TransformerConfig, ids: list[list[int]], batch: int, bf16: bool) -> None:
        self.k, self.bf16 = cfg.freeze_layers, bf16
        self.model = build_transformer(cfg)
        freeze(self.model, cfg)
        self.model.prefix_layers = self.k
        self.opt = torch.optim.AdamW([p for p in self.model.parameters() if p.requires_grad], lr=1e-5)
        order = sorted(ids, key=len)
        self.groups = [order[i : i + batch] for i in range(0, len(order), batch)]
        self.cache: dict[int, torch.Tensor] = {}

    def autocast(self) -> torch.autocast:
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16)

    def rate(self, fn) -> float:  # type: ignore[no-untyped-def]
        fn(self.groups[len(self.groups) // 2])  # warm-up on a middle-length batch
        start = time.perf_counter()
        for group in self.groups:
            fn(group)
        return sum(len(g) for g in self.groups) / (time.perf_counter() - start)

    def prefix(self, group: list[list[int]]) -> None:
        x, mask = padded(group)
        with torch.no_grad(), self.autocast():
            self.cache[id(group)] = self.model.prefix(x, mask, self.k).float()

    def step(self, group: list[list[int]], cached: bool) -> None:
        """What the engine does per batch: forward, loss, backward, clipping, AdamW."""
        self.model.train()
        x, mask = padded(group)
        with self.autocast():
            logits = self.model(self.cache[id(group)] if cached else x, mask)
        loss = torch.nn.functional.cross_entropy(logits.float(), torch.zeros(len(group), dtype=torch.long))
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad], 1.0)
        self.opt.step()
        self.opt.zero_grad()

    def forward(self, group: list[list[int]], cached: bool) -> None:
        self.model.eval()
        x, mask = padded(group)
        with torch.inference_mode(), self.autocast():
            self.model(self.cache[id(group)] if cached else x, mask)


if __name__ == "__main__":
    main()
