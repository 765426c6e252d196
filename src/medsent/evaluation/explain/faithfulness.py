"""ERASER faithfulness (DeYoung et al., ACL 2020) of an explanation method on labelled reviews.

For each review and each share k of its tokens, the top-k% tokens by attribution are
- removed: comprehensiveness, the drop in the predicted class's probability (higher is better);
- kept alone: sufficiency, the drop when only they remain (lower is better);
and the same number of random tokens (seeded) gives the floor each figure must clear. A method
that ranks words no better than chance removes no more probability than random words do.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from medsent.evaluation.explain.words import reader_spans, without

if TYPE_CHECKING:
    from medsent.inference.predict import Predictor

SHARES = (0.05, 0.1, 0.2, 0.5)
GATE_SHARE = 0.2  # a default method removes at least GATE_RATIO x the random drop at this share
GATE_RATIO = 2.0


def faithfulness(
    predictor: Predictor, texts: Sequence[str], method: str, seed: int = 0, shares: Sequence[float] = SHARES
) -> dict[str, Any]:
    """Comprehensiveness and sufficiency per share against random tokens, their means over the
    shares (AOPC), and the time each explanation took (p50 / p90)."""
    from medsent.evaluation.explain import pick_method

    chosen = pick_method(predictor, method)
    rng = np.random.default_rng(seed)
    cleaned = [t for t in predictor.clean(texts) if len(reader_spans(t)) >= 2]
    base = predictor.predict_proba(cleaned)
    labels = predictor.decide(base)
    variants: list[str] = []
    plan: list[tuple[int, float, str]] = []  # (review, share, which) per variant
    seconds = []
    for r, (text, label) in enumerate(zip(cleaned, labels, strict=True)):
        spans = reader_spans(text)
        start = time.perf_counter()
        scores = chosen.attribute(predictor, text, spans, int(label)).scores
        seconds.append(time.perf_counter() - start)
        n = len(spans)
        order = np.argsort(-scores, kind="stable")
        for share in shares:
            m = max(1, math.ceil(share * n))
            for which, picked in (("top", order[:m]), ("random", rng.choice(n, m, replace=False))):
                drop = np.zeros(n, dtype=bool)
                drop[picked] = True
                variants += [without(text, spans, list(drop)), without(text, spans, list(~drop))]
                plan += [(r, share, f"comprehensiveness_{which}"), (r, share, f"sufficiency_{which}")]
    proba = predictor.predict_proba(variants) if variants else np.zeros((0, 3))
    sums: dict[tuple[float, str], list[float]] = {}
    for (r, share, key), row in zip(plan, proba, strict=True):
        label = int(labels[r])
        sums.setdefault((share, key), []).append(float(base[r, label] - row[label]))
    table = [
        {
            "share": share,
            **{key: float(np.mean(sums[(share, key)])) for key in sorted({k for _, k in sums})},
        }
        for share in shares
    ]
    at_gate = next((row for row in table if row["share"] == GATE_SHARE), None)
    ratio = (
        at_gate["comprehensiveness_top"] / at_gate["comprehensiveness_random"]
        if at_gate and at_gate["comprehensiveness_random"] > 0
        else float("nan")
    )
    return {
        "method": chosen.name,
        "model": predictor.model_name,
        "reviews": len(cleaned),
        "seed": seed,
        "by_share": table,
        "aopc_comprehensiveness": float(np.mean([row["comprehensiveness_top"] for row in table])),
        "aopc_comprehensiveness_random": float(np.mean([row["comprehensiveness_random"] for row in table])),
        "aopc_sufficiency": float(np.mean([row["sufficiency_top"] for row in table])),
        "aopc_sufficiency_random": float(np.mean([row["sufficiency_random"] for row in table])),
        "ratio_at_20": ratio,
        "clears_gate": bool(ratio >= GATE_RATIO),
        "seconds_p50": float(np.median(seconds)) if seconds else float("nan"),
        "seconds_p90": float(np.quantile(seconds, 0.9)) if seconds else float("nan"),
    }
