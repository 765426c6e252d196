"""How far a distilled student is from its teacher, and whether moving its decision threshold helps.

For each --fit file (a random --sample of its reviews) and for --data: how often the student's answer
is the teacher's, each model's class shares, and the mean probability per class. Then offsets for
the student (first class fixed at 0) that make its class shares on the --fit reviews match the
teacher's there (label-free: gold labels are never read for them), and --data macro-F1 before
and after those offsets.

    python benchmarks/student_vs_teacher.py minilm-full base-13 --data webmd_val.csv \
        --fit webmd_effectiveness_only.csv --fit webmd_reviews.csv --sample 1000
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from medsent.core.labels import LABELS
from medsent.data.dataset import load_labeled_for
from medsent.data.presets import data_layer
from medsent.evaluation.metrics import macro_f1_many
from medsent.inference.decisions import decide
from medsent.inference.predict import Predictor

GRID = np.round(np.arange(-1.5, 1.5001, 0.02), 3)


def shares(proba: np.ndarray, offsets: np.ndarray | None = None) -> np.ndarray:
    return np.bincount(decide(proba, offsets), minlength=len(LABELS)) / len(proba)


def matching_offsets(student: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Grid offsets whose argmax shares are closest (L1) to ``target``; ties go to the first found."""
    best, best_err = np.zeros(len(LABELS)), np.inf
    for a in GRID:
        for b in GRID:
            off = np.array([0.0, a, b])
            err = float(np.abs(shares(student, off) - target).sum())
            if err < best_err:
                best, best_err = off, err
    return best


def fmt(v: np.ndarray) -> str:
    return " / ".join(f"{x:.3f}" for x in v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("teacher", type=Path)
    ap.add_argument("student", type=Path)
    ap.add_argument("--data", type=Path, required=True, help="Labelled file the offsets are scored on.")
    ap.add_argument("--fit", type=Path, action="append", required=True, help="Training text (repeatable).")
    ap.add_argument("--sample", type=int, default=1000, help="Reviews drawn from each --fit file.")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    teacher, student = Predictor(args.teacher), Predictor(args.student)
    print(
        f"teacher {args.teacher.name}, student {args.student.name}; shares and mean p: {' / '.join(LABELS)}"
    )
    print("| reviews | n | agreement | teacher shares | student shares | teacher mean p | student mean p |")
    print("|---|---:|---:|---|---|---|---|")
    fit_t, fit_s = [], []
    sets: list[tuple[str, list[str]]] = []
    for path in args.fit:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        texts = frame["review"].sample(min(args.sample, len(frame)), random_state=args.seed)
        sets.append((path.name, [t for t in texts if t.strip()]))
    val = load_labeled_for(student.config, args.data, data_layer(None)).frame
    sets.append((f"{args.data.name} (scored)", val["text"].tolist()))
    for name, texts in sets:
        pt = np.asarray(teacher.predict_proba(texts))
        ps = np.asarray(student.predict_proba(texts))
        agree = float((pt.argmax(1) == ps.argmax(1)).mean())
        print(f"| {name} | {len(texts)} | {agree:.3f} | {fmt(shares(pt))} | {fmt(shares(ps))} | "
              f"{fmt(pt.mean(0))} | {fmt(ps.mean(0))} |")  # fmt: skip
        if "(scored)" in name:
            val_s = ps
        else:
            fit_t.append(pt)
            fit_s.append(ps)
    off = matching_offsets(np.concatenate(fit_s), shares(np.concatenate(fit_t)))
    y = val["label"].to_numpy()
    before = float(macro_f1_many(y[None], decide(val_s)[None])[0])
    after = float(macro_f1_many(y[None], decide(val_s, off)[None])[0])
    print(f"share-matching offsets {fmt(off)}: {args.data.name} macro-F1 {before:.4f} -> {after:.4f}, "
          f"student shares there {fmt(shares(val_s, off))}")  # fmt: skip


if __name__ == "__main__":
    main()
