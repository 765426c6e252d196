"""Offline check of cascade routing rules on saved predictions (`medsent predict --input F --output
CSV` of the fast and the slow run): one max-probability threshold, the top-two margin, one threshold
per predicted class. Fitted on the first file pair (validation), applied to the second.

    python benchmarks/cascade_rules.py val-fast.csv val-slow.csv satisfaction \
        ask-fast.csv ask-slow.csv rating [--tolerance 0.005]
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from medsent.inference.cascade import combine

P = ["p_negative", "p_neutral", "p_positive"]


def load(fast: str, slow: str, rating: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    f, s = pd.read_csv(fast), pd.read_csv(slow)
    r = f[rating]
    ok = (r.between(1, 5) & f["review"].fillna("").str.split().str.len().ge(3)).to_numpy()
    y = np.where(r <= 2, 0, np.where(r == 3, 1, 2))[ok]
    return f.loc[ok, P].to_numpy(), s.loc[ok, P].to_numpy(), y


def macro(y: np.ndarray, p: np.ndarray) -> float:
    return float(f1_score(y, p, average="macro"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("val_fast"), ap.add_argument("val_slow"), ap.add_argument("val_rating")
    ap.add_argument("test_fast"), ap.add_argument("test_slow"), ap.add_argument("test_rating")
    ap.add_argument("--tolerance", type=float, default=0.005)
    a = ap.parse_args()
    fv, sv, yv = load(a.val_fast, a.val_slow, a.val_rating)
    fa, sa, ya = load(a.test_fast, a.test_slow, a.test_rating)
    floor = macro(yv, sv.argmax(1)) - a.tolerance

    def casc(f: np.ndarray, s: np.ndarray, route: np.ndarray) -> np.ndarray:
        return combine(f, s, route).argmax(1)

    def report(name: str, rv: np.ndarray, ra: np.ndarray) -> None:
        print(
            f"| {name} | {macro(yv, casc(fv, sv, rv)):.4f} | {1 - rv.mean():.3f} | "
            f"{macro(ya, casc(fa, sa, ra)):.4f} | {1 - ra.mean():.3f} |"
        )

    print(
        f"fast {macro(yv, fv.argmax(1)):.4f} / {macro(ya, fa.argmax(1)):.4f}; "
        f"slow {macro(yv, sv.argmax(1)):.4f} / {macro(ya, sa.argmax(1)):.4f}"
    )
    print(
        "| rule | val macro-F1 | val share fast | test macro-F1 | test share fast |\n|---|---:|---:|---:|---:|"
    )
    top2 = lambda p: np.sort(p, 1)[:, 2] - np.sort(p, 1)[:, 1]  # noqa: E731
    for name, cv, ca in (("max prob", fv.max(1), fa.max(1)), ("margin", top2(fv), top2(fa))):
        ok = [t for t in np.linspace(1 / 3, 1, 68) if macro(yv, casc(fv, sv, cv < t)) >= floor]
        t = min(ok) if ok else 1.0  # lowest threshold within tolerance: largest fast share
        report(f"{name} t={t:.3f}", cv < t, ca < t)
    grid, kv, ka = np.linspace(1 / 3, 1, 35), fv.argmax(1), fa.argmax(1)
    best: tuple[np.ndarray, float] | None = None
    for t in itertools.product(grid, grid, grid):
        tt = np.array(t)
        rv = fv.max(1) < tt[kv]
        if best is not None and 1 - rv.mean() <= best[1]:
            continue
        if macro(yv, casc(fv, sv, rv)) >= floor:
            best = (tt, 1 - rv.mean())
    if best is not None:
        report(f"per class {np.round(best[0], 3)}", fv.max(1) < best[0][kv], fa.max(1) < best[0][ka])


if __name__ == "__main__":
    main()
