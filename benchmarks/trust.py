"""Faithfulness of every explanation method, and the robustness report, for a set of runs.

Usage: .venv/bin/python benchmarks/trust.py RUN [RUN...] --data webmd_val.csv [--faith-sample 200]
           [--expose-sample 500] [--seed 0] [--out DIR] [--methods occlusion ...]

Prints two Markdown tables (the ones in BENCHMARKS.md) and, with --out, writes every figure as JSON.
Explanation times are per review, the attribution alone, one review at a time, on this machine.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from medsent.data.dataset import load_labeled_for
from medsent.evaluation.explain import fitting_methods
from medsent.evaluation.explain.faithfulness import faithfulness
from medsent.evaluation.expose import expose
from medsent.inference.predict import Predictor


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--faith-sample", type=int, default=200)
    ap.add_argument("--expose-sample", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", nargs="*", default=None)
    ap.add_argument("--skip-expose", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    faith_rows, expose_rows, dump = [], [], {}
    for run in args.runs:
        predictor = Predictor(run)
        frame = load_labeled_for(predictor.config, args.data).frame
        order = np.random.default_rng(args.seed).permutation(len(frame))
        texts = frame["text"].tolist()
        sample = [texts[i] for i in sorted(order[: args.faith_sample])]
        methods = args.methods or fitting_methods(predictor.kind.family)
        for method in methods:
            if method not in fitting_methods(predictor.kind.family):
                continue
            start = time.perf_counter()
            r = faithfulness(predictor, sample, method, args.seed)
            at = next(x for x in r["by_share"] if x["share"] == 0.2)
            faith_rows.append(
                f"| {run.name} | {method} | {r['reviews']} | {at['comprehensiveness_top']:.3f} | "
                f"{at['comprehensiveness_random']:.3f} | {r['ratio_at_20']:.1f} | {at['sufficiency_top']:.3f} | "
                f"{at['sufficiency_random']:.3f} | {r['aopc_comprehensiveness']:.3f} | "
                f"{1000 * r['seconds_p50']:.0f} | {'yes' if r['clears_gate'] else 'no'} |"
            )
            dump[f"{run.name}/{method}"] = {**r, "wall_s": time.perf_counter() - start}
            print(faith_rows[-1], flush=True)
        if args.skip_expose:
            continue
        pick = frame.iloc[np.sort(order[: args.expose_sample])].reset_index(drop=True)
        drugs = pick["drug"].dropna().astype(str).unique().tolist() if "drug" in pick.columns else []
        report = expose(predictor, pick["text"].tolist(), pick["label"].to_numpy(), drugs, args.seed)
        dump[f"{run.name}/expose"] = report
        cells = [f"{100 * t['failure_rate']:.1f}%" for t in report["tests"]]
        expose_rows.append(f"| {run.name} | " + " | ".join(cells) + " |")
        names = [t["test"] for t in report["tests"]]
        print(expose_rows[-1], flush=True)
    print("\n| run | method | reviews | comp@20% | random | ratio | suff@20% | random | AOPC comp | p50 ms | default-worthy |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    print("\n".join(faith_rows))
    if expose_rows:
        print("\n| run | " + " | ".join(names) + " |")
        print("|---|" + "---:|" * len(names))
        print("\n".join(expose_rows))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "trust.json").write_text(json.dumps(dump, indent=2, default=str))


if __name__ == "__main__":
    main()
