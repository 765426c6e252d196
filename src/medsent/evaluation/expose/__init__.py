"""How a run breaks: a robustness report in the manner of CheckList (Ribeiro et al., ACL 2020).

- invariance: typos, casing, punctuation, whitespace and another drug's name should not change
  the answer; the report gives the share that changed, and macro-F1 before and after;
- directional: a clearly negative clause must not raise the Positive probability, and a clearly
  positive one must not raise the Negative probability;
- negation: of a minimal pair ("it worked" / "it did not work"), the first must read more positive;
- out of distribution: near-empty, very long, non-English and random-character inputs should fall
  to the manual tier, never to ``auto``.

Each test gives a failure rate and failing examples. Every perturbation draws from its own seeded
generator: the same seed gives the same report.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from medsent.core.labels import LABELS
from medsent.evaluation.expose import perturb

NEGATIVE, POSITIVE = LABELS.index("Negative"), LABELS.index("Positive")
TOLERANCE = 0.01  # a directional test fails when the probability rises by more than this
EXAMPLES = 5


class Scorer(Protocol):
    """What the tests need of a run (``Predictor`` is one): probabilities, decisions and tiers."""

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray: ...

    def decide(self, proba: np.ndarray) -> np.ndarray: ...

    def records(self, proba: np.ndarray) -> list[dict[str, Any]]: ...


def _macro_f1(y: np.ndarray | None, pred: np.ndarray) -> float | None:
    if y is None or len(y) == 0:
        return None
    from medsent.evaluation.metrics import macro_f1_many

    return float(macro_f1_many(y, pred, len(LABELS))[0])


def _example(before: str, after: str, p0: np.ndarray, p1: np.ndarray, d0: int, d1: int) -> dict[str, Any]:
    return {
        "original": before,
        "perturbed": after,
        "before": {"prediction": LABELS[d0], "probabilities": dict(zip(LABELS, map(float, p0), strict=True))},
        "after": {"prediction": LABELS[d1], "probabilities": dict(zip(LABELS, map(float, p1), strict=True))},
    }


def invariance(
    scorer: Scorer,
    name: str,
    texts: Sequence[str],
    y: np.ndarray | None,
    change: Callable[[str], str | None],
    base: tuple[np.ndarray, np.ndarray],
) -> dict[str, Any]:
    """The share of answers a meaning-keeping change flips (rows it does not apply to are left out)."""
    pairs = [(i, change(t)) for i, t in enumerate(texts)]
    rows = [i for i, t in pairs if t is not None and t.strip()]
    after = [str(t) for _, t in pairs if t is not None and t.strip()]
    proba0, pred0 = base[0][rows], base[1][rows]
    proba1 = scorer.predict_proba(after) if after else np.zeros((0, len(LABELS)))
    pred1 = scorer.decide(proba1) if after else np.zeros(0, dtype=int)
    flipped = np.flatnonzero(pred0 != pred1)
    ys = y[rows] if y is not None else None
    return {
        "test": name,
        "kind": "invariance",
        "n": len(rows),
        "failure_rate": float(len(flipped) / len(rows)) if rows else None,
        "macro_f1_before": _macro_f1(ys, pred0),
        "macro_f1_after": _macro_f1(ys, pred1),
        "examples": [
            _example(texts[rows[k]], after[k], proba0[k], proba1[k], int(pred0[k]), int(pred1[k]))
            for k in flipped[:EXAMPLES]
        ],
    }


def directional(
    scorer: Scorer,
    name: str,
    texts: Sequence[str],
    change: Callable[[str], str],
    must_not_rise: int,
    base: tuple[np.ndarray, np.ndarray],
) -> dict[str, Any]:
    after = [change(t) for t in texts]
    proba1 = scorer.predict_proba(after)
    pred1 = scorer.decide(proba1)
    rise = proba1[:, must_not_rise] - base[0][:, must_not_rise]
    failed = np.flatnonzero(rise > TOLERANCE)
    worst = failed[np.argsort(-rise[failed], kind="stable")][:EXAMPLES]
    return {
        "test": name,
        "kind": "directional",
        "n": len(texts),
        "failure_rate": float(len(failed) / len(texts)) if texts else None,
        "expectation": f"P({LABELS[must_not_rise]}) does not rise by more than {TOLERANCE}",
        "mean_change": float(rise.mean()) if len(texts) else None,
        "examples": [
            _example(texts[k], after[k], base[0][k], proba1[k], int(base[1][k]), int(pred1[k])) for k in worst
        ],
    }


def negation(scorer: Scorer, pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    better = scorer.predict_proba([b for b, _ in pairs])
    worse = scorer.predict_proba([w for _, w in pairs])
    db, dw = scorer.decide(better), scorer.decide(worse)
    failed = np.flatnonzero(better[:, POSITIVE] <= worse[:, POSITIVE])
    return {
        "test": "negation",
        "kind": "negation",
        "n": len(pairs),
        "failure_rate": float(len(failed) / len(pairs)) if pairs else None,
        "expectation": "P(Positive) of the statement above that of its negation",
        "pairs_told_apart": float(np.mean(db != dw)) if pairs else None,
        "examples": [
            _example(pairs[k][0], pairs[k][1], better[k], worse[k], int(db[k]), int(dw[k]))
            for k in failed[:EXAMPLES]
        ],
    }


def out_of_distribution(scorer: Scorer, name: str, texts: Sequence[str]) -> dict[str, Any]:
    proba = scorer.predict_proba(texts)
    records = scorer.records(proba)
    tiers = [r["tier"] for r in records]
    failed = [k for k, t in enumerate(tiers) if t == "auto"]
    return {
        "test": name,
        "kind": "out_of_distribution",
        "n": len(texts),
        "failure_rate": float(len(failed) / len(texts)) if texts else None,
        "expectation": "tier manual or review, never auto",
        "mean_confidence": float(np.mean([r["confidence"] for r in records])) if records else None,
        "tiers": {t: tiers.count(t) for t in ("auto", "review", "manual")},
        "examples": [
            {
                "text": texts[k][:300],
                "prediction": records[k]["prediction"],
                "confidence": records[k]["confidence"],
            }
            for k in failed[:EXAMPLES]
        ],
    }


def expose(
    scorer: Scorer,
    texts: Sequence[str],
    y: np.ndarray | None = None,
    drugs: Sequence[str] = (),
    seed: int = 0,
    typo_rate: float = 0.1,
) -> dict[str, Any]:
    """Every test on ``texts`` (with labels ``y`` where known: macro-F1 before and after the
    invariance changes); ``drugs``: the drug names the data knows, for the drug-swap test."""
    texts = list(texts)

    def rng(k: int) -> np.random.Generator:
        return np.random.default_rng([seed, k])

    base_proba = scorer.predict_proba(texts)
    base = (base_proba, scorer.decide(base_proba))
    known = {d.strip() for d in drugs if isinstance(d, str) and len(d.strip()) > 2}
    names = sorted(known | set(perturb.DRUGS))
    g = [rng(k) for k in range(12)]
    keep_meaning: list[tuple[str, Callable[[str], str | None]]] = [
        (f"typos ({typo_rate:.0%} of words)", lambda t: perturb.typos(t, g[0], typo_rate)),
        ("lowercase", lambda t: perturb.lowercase(t, g[1])),
        ("uppercase", lambda t: perturb.uppercase(t, g[2])),
        ("no punctuation", lambda t: perturb.no_punctuation(t, g[3])),
        ("extra whitespace", lambda t: perturb.extra_whitespace(t, g[4])),
        ("another drug's name", lambda t: perturb.swap_drug(t, g[5], names)),
    ]
    tests = [invariance(scorer, name, texts, y, change, base) for name, change in keep_meaning]

    def clause(clauses: Sequence[str], gen: np.random.Generator) -> Callable[[str], str]:
        return lambda t: perturb.add_clause(t, gen, clauses)

    tests.append(
        directional(
            scorer, "add a negative clause", texts, clause(perturb.NEGATIVE_CLAUSES, g[6]), POSITIVE, base
        )
    )
    tests.append(
        directional(
            scorer, "add a positive clause", texts, clause(perturb.POSITIVE_CLAUSES, g[7]), NEGATIVE, base
        )
    )
    tests.append(negation(scorer, perturb.negation_pairs(g[8], 100, names)))
    lengths = g[11].integers(5, 200, 20)
    for name, odd in (
        ("near-empty", list(perturb.EMPTYISH)),
        ("very long", [perturb.very_long(texts, g[9]) for _ in range(5)]),
        ("non-English", list(perturb.NON_ENGLISH)),
        ("random characters", [perturb.random_characters(g[10], int(n)) for n in lengths]),
    ):
        tests.append(out_of_distribution(scorer, name, odd))
    return {"seed": seed, "n": len(texts), "typo_rate": typo_rate, "tests": tests}


def markdown(report: dict[str, Any], title: str) -> str:
    """The report as a table plus the first failing examples of each test."""
    lines = [
        f"# {title}",
        "",
        f"{report['n']} reviews, seed {report['seed']}.",
        "",
        "| test | kind | n | failure rate | macro-F1 before -> after |",
        "|---|---|---:|---:|---|",
    ]
    for t in report["tests"]:
        f1 = ""
        if t.get("macro_f1_before") is not None:
            f1 = f"{t['macro_f1_before']:.4f} -> {t['macro_f1_after']:.4f}"
        rate = "-" if t["failure_rate"] is None else f"{t['failure_rate']:.1%}"
        lines.append(f"| {t['test']} | {t['kind']} | {t['n']} | {rate} | {f1} |")
    for t in report["tests"]:
        if not t["examples"]:
            continue
        lines += ["", f"## {t['test']}: failing examples", ""]
        for ex in t["examples"][:3]:
            if "perturbed" in ex:
                lines.append(
                    f"- {ex['before']['prediction']} -> {ex['after']['prediction']}: "
                    f"`{ex['original'][:160]}` -> `{ex['perturbed'][:160]}`"
                )
            else:
                lines.append(f"- {ex['prediction']} ({ex['confidence']:.2f}): `{ex['text'][:160]}`")
    return "\n".join(lines) + "\n"
