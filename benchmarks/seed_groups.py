"""Compare groups of runs trained with different seeds on one labelled file: mean ± sd macro-F1 and
Neutral F1 per group, and the paired bootstrap 95% interval of each group's difference to a base group
(reviews resampled jointly; seeds paired in the order given). The distillation tables of
BENCHMARKS.md come from it.

    python benchmarks/seed_groups.py --data webmd_val.csv \
        --group gold=runs/gold-13,runs/gold-14,runs/gold-15 \
        --group student=runs/stu-13,runs/stu-14,runs/stu-15 --base gold

A member may also be a .npy file that ``--save-proba`` wrote for the same --data (its labels.npy
beside it): runs trained on another machine are compared with runs here without copying them. Saved
probabilities are decided by argmax (a run's macro-F1 offsets, if any, are not saved).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np

from medsent.core.labels import LABELS
from medsent.data.dataset import load_labeled_for
from medsent.data.presets import data_layer
from medsent.evaluation.metrics import class_f1, macro_f1_many
from medsent.inference.decisions import decide
from medsent.inference.predict import Predictor
from medsent.training.ablate import paired_bootstrap


def _sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--preset", default=None, help="Column preset of --data (e.g. askapatient).")
    ap.add_argument("--group", action="append", required=True, help="NAME=RUN,RUN,... (seeds in order)")
    ap.add_argument("--base", required=True, help="The group the others are compared with.")
    ap.add_argument(
        "--save-proba",
        type=Path,
        default=None,
        help="Folder for each run's probabilities and the labels (GROUP-SEEDINDEX.npy, labels.npy): "
        "runs trained on another machine can be compared again later without their folders.",
    )
    args = ap.parse_args()

    groups: dict[str, list[Path]] = {}
    for spec in args.group:
        name, _, runs = spec.partition("=")
        groups[name] = [Path(r) for r in runs.split(",") if r]
    if args.base not in groups:
        raise SystemExit(f"--base {args.base}: not one of the groups ({', '.join(groups)})")

    y: np.ndarray | None = None
    preds: dict[str, list[np.ndarray]] = {}
    for name, runs in groups.items():
        preds[name] = []
        for run in runs:
            if run.suffix == ".npy":
                if not (run.is_file() and (run.parent / "labels.npy").is_file()):
                    raise SystemExit(
                        f"{run}: no such file, or no labels.npy beside it (--save-proba writes both)"
                    )
                saved, labels = np.load(run), np.load(run.parent / "labels.npy")
                if y is not None and not np.array_equal(y, labels):
                    raise SystemExit(f"{run}: saved for other rows than {args.data}; not comparable")
                y = labels
                preds[name].append(saved.argmax(axis=1))
                continue
            predictor = Predictor(run)
            frame = load_labeled_for(predictor.config, args.data, data_layer(args.preset)).frame
            labels = frame["label"].to_numpy()
            if y is None:
                y = labels
            elif not np.array_equal(y, labels):
                raise SystemExit(f"{run}: its cleaning keeps other rows of {args.data}; not comparable")
            proba = np.asarray(predictor.predict_proba(frame["text"].tolist()))
            preds[name].append(decide(proba, predictor.offsets))
            if args.save_proba is not None:
                args.save_proba.mkdir(parents=True, exist_ok=True)
                np.save(args.save_proba / f"{name}-{len(preds[name]) - 1}.npy", proba.astype(np.float32))
                np.save(args.save_proba / "labels.npy", labels)
    assert y is not None
    neutral = LABELS.index("Neutral")
    print(f"data: {args.data} (n = {len(y)}); base: {args.base}")
    print("| group | seeds | macro-F1 mean ± sd | Neutral F1 mean ± sd | diff to base [95% CI] |")
    print("|---|---:|---:|---:|---:|")
    for name, ps in preds.items():
        f1 = [float(macro_f1_many(y[None], p[None])[0]) for p in ps]
        nf = [float(class_f1(y[None], p[None], neutral)[0]) for p in ps]
        cell = "base"
        if name != args.base:
            base = preds[args.base][: len(ps)]
            point, lo, hi = paired_bootstrap(y, base, ps[: len(base)], "macro_f1")
            cell = f"{point:+.4f} [{lo:+.4f}, {hi:+.4f}]"
        print(
            f"| {name} | {len(ps)} | {statistics.mean(f1):.4f} ± {_sd(f1):.4f} | "
            f"{statistics.mean(nf):.3f} ± {_sd(nf):.3f} | {cell} |"
        )


if __name__ == "__main__":
    main()
