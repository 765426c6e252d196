"""Where batch prediction spends its time: a per-stage profile, as it was and as it is.

"before" runs the stages the way medsent 0.1 did (ftfy on every review, scikit-learn's vectorizer
transform); "after" runs today's code (ftfy only where it could change something, the cached n-gram
counters). Same reviews, same process, one core.

Usage: .venv/bin/python benchmarks/predict_profile.py RUN_DIR [--rows 20000]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import ftfy
import pandas as pd
import torch

from medsent.data.clean import TEXT_STEPS, normalize_text
from medsent.inference.predict import Predictor

POOL = Path(__file__).resolve().parents[2] / "shared" / "data" / "webmd" / "webmd_reviews.csv"


def timed(fn, *args):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("--rows", type=int, default=20_000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    pool = pd.read_csv(POOL, dtype=str, keep_default_na=False)
    texts = [t for t in pool["review"] if t.strip()]
    texts = (texts * (args.rows // len(texts) + 1))[: args.rows]
    p = Predictor(args.run)
    cfg = p.config.clean
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores (1 thread used), {args.rows:,} reviews, run {args.run.name}"
    )
    rows: list[tuple[str, float, float]] = []

    def repairs_before(ts: list[str]) -> list[str]:
        out = []
        for t in ts:
            for _, switch, fn in TEXT_STEPS:
                if getattr(cfg, switch):
                    t = ftfy.fix_text(t, normalization="NFC") if switch == "fix_encoding" else fn(t)
            out.append(t)
        return out

    cleaned, before = timed(repairs_before, texts)
    after_cleaned, after = timed(lambda ts: [normalize_text(t, cfg) for t in ts], texts)
    assert after_cleaned == cleaned
    rows.append(("text repairs (HTML, ftfy, URLs, spaces)", before, after))
    model = p.model
    if hasattr(model, "vectorizers"):  # the SVM
        views, t = timed(model._views, cleaned)
        rows.append(("model text view (tokens, negation)", t, t))
        for branch in views:
            ref, before = timed(model.vectorizers[branch].transform, views[branch])
            model._counter(branch).transform(views[branch][:2000])  # as in a long job: the word cache is warm
            got, after = timed(model._counter(branch).transform, views[branch])
            assert (ref != got).nnz == 0
            rows.append((f"TF-IDF {branch} n-grams", before, after))
        x, _ = timed(model._features, cleaned)
        _, t = timed(lambda: x @ model.weights["coef"].T)
        rows.append(("linear scores", t, t))
    else:  # a neural run
        from medsent.inference.neural import text_view

        view, t = timed(text_view, cleaned, p.config)
        rows.append(("model text view (tokens, negation)", t, t))
        ids, t = timed(model.vocab.encode, view)
        rows.append(("vocabulary ids", t, t))
        from medsent.inference.neural import predict_logits

        _, before = timed(predict_logits, model.model, ids, p.config.vocab.buckets, 256)
        fast = model._fast_net()
        after = before
        if fast is not None:
            _, after = timed(predict_logits, fast, ids, p.config.vocab.buckets, 64)
        rows.append(("network (before: convolutions, batches of 256; after: inference form)", before, after))
    _, whole_after = timed(p.predict_proba, texts)
    print("| stage | before s | after s | before reviews/s | after reviews/s |")
    print("|---|---:|---:|---:|---:|")
    for name, b, a in rows:
        print(f"| {name} | {b:.2f} | {a:.2f} | {args.rows / b:,.0f} | {args.rows / a:,.0f} |")
    print(f"| whole predict_proba (after) | | {whole_after:.2f} | | {args.rows / whole_after:,.0f} |")


if __name__ == "__main__":
    main()
