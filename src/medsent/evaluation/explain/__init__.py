"""Word-level explanations of a run's answers, by any method of ``methods.METHODS`` that fits it.

Each explanation is given on the reader's tokens of the original review (``words``), toward the
predicted class unless a target class is named, with the prediction it explains.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from medsent.core.errors import ConfigError
from medsent.core.labels import LABELS
from medsent.evaluation.explain.methods import METHODS, Attribution, Method
from medsent.evaluation.explain.words import reader_spans, to_original

if TYPE_CHECKING:
    from medsent.inference.predict import Predictor

# Each family's default method: of those that remove far more probability than random words do
# (ERASER comprehensiveness at 20% of the words at least twice the random drop, on webmd_val), the
# cheapest per review. The figures are in BENCHMARKS.md.
DEFAULTS = {
    "sklearn": "linear",
    "neural": "occlusion",
    "transformer": "integrated_gradients",
    "ensemble": "occlusion",
    "cascade": "occlusion",
}
ORDER = ("linear", "integrated_gradients", "occlusion")


def fitting_methods(family: str) -> list[str]:
    """The methods that explain runs of a family, its default first."""
    fitting = [name for name in ORDER if METHODS[name].fits(family)]
    default = DEFAULTS.get(family, "occlusion")
    return sorted(fitting, key=lambda name: name != default)


def pick_method(predictor: Predictor, name: str | None) -> Method:
    """The named method, or the run's default; an unknown name or one that does not fit the run is
    refused with the methods that would."""
    fitting = fitting_methods(predictor.kind.family)
    if name is None:
        return METHODS[fitting[0]]
    key = name.lower().replace("-", "_")
    if key not in METHODS:
        raise ConfigError(f"unknown explanation method '{name}'; known: {', '.join(METHODS)}")
    if key not in fitting:
        raise ConfigError(
            f"method '{key}' does not fit a {predictor.model_name} run; methods for it: {', '.join(fitting)}"
        )
    return METHODS[key]


def target_index(target: str | None) -> int | None:
    if target is None:
        return None
    names = [n.lower() for n in LABELS]
    if target.lower() not in names:
        raise ConfigError(f"unknown target class '{target}'; known: {', '.join(LABELS)}")
    return names.index(target.lower())


def explain(
    predictor: Predictor, texts: Sequence[str], method: str | None = None, target: str | None = None
) -> list[dict[str, Any]]:
    """One record per text: the prediction, confidence and tier, the class explained, and one score
    per reader token (character spans in the original text). ``rest``: what the method gives no
    word (the SVM's intercept, an encoder's special tokens)."""
    from medsent.data.clean import is_blank

    chosen = pick_method(predictor, method)
    wanted = target_index(target)
    blank = [not isinstance(t, str) or is_blank(t) for t in texts]
    live = [t for t, b in zip(texts, blank, strict=True) if not b]
    cleaned = predictor.clean(live)
    proba = predictor.predict_proba(live) if live else np.zeros((0, len(LABELS)))
    records, decided = predictor.records(proba), predictor.decide(proba)
    done = []
    for text, clean, record, best in zip(live, cleaned, records, decided, strict=True):
        label = int(best) if wanted is None else wanted
        spans = reader_spans(clean)
        start = time.perf_counter()
        attribution: Attribution = chosen.attribute(predictor, clean, spans, label)
        seconds = time.perf_counter() - start
        places = to_original(text, clean, spans)
        tokens = [
            {"text": text[s:e], "start": s, "end": e, "score": float(score)}
            for (s, e), score in zip(places, attribution.scores, strict=True)
        ]
        done.append(
            {
                **record,
                "target": LABELS[label],
                "method": chosen.name,
                "tokens": tokens,
                "rest": attribution.rest,
                **({"delta": attribution.delta} if attribution.delta is not None else {}),
                **attribution.extra,
                "seconds": seconds,
            }
        )
    # A blank review gets what prediction gives it (no label, the manual tier) and no words.
    empty: dict[str, Any] = {"prediction": None, "confidence": None, "probabilities": None, "tier": "manual"}
    empty["tokens"] = []
    it = iter(done)
    return [{**empty, "method": chosen.name} if b else next(it) for b in blank]


def highlight_html(text: str, record: dict[str, Any], limit: int = 600) -> str:
    """The review as HTML, each word shaded by its score (green toward the explained class, red
    against it), cut at ``limit`` characters; everything is escaped."""
    import html

    tokens = [t for t in record.get("tokens", []) if t["end"] <= limit]
    top = max((abs(t["score"]) for t in tokens), default=0.0) or 1.0
    out, at = [], 0
    for t in tokens:
        out.append(html.escape(text[at : t["start"]]))
        alpha = min(1.0, abs(t["score"]) / top) * 0.75
        colour = f"rgba(46,160,67,{alpha:.2f})" if t["score"] >= 0 else f"rgba(215,58,73,{alpha:.2f})"
        word = html.escape(text[t["start"] : t["end"]])
        out.append(f'<span style="background:{colour}" title="{t["score"]:.4f}">{word}</span>')
        at = t["end"]
    out.append(html.escape(text[at:limit]) + ("..." if len(text) > limit else ""))
    return "".join(out)


def explain_mistakes(
    predictor: Predictor, texts: Sequence[str], mistakes: list[dict[str, Any]], k: int = 5
) -> list[dict[str, Any]]:
    """The first ``k`` mistakes (``analysis.confident_mistakes``) with the words behind the wrong
    answer: ``top_words`` and ``html`` (the review, highlighted), by the run's default method."""
    chosen = mistakes[:k]
    records = explain(predictor, [texts[m["row"]] for m in chosen])
    return [
        {**m, "method": r["method"], "top_words": top_words(r), "html": highlight_html(texts[m["row"]], r)}
        for m, r in zip(chosen, records, strict=True)
    ]


def top_words(record: dict[str, Any], k: int = 5) -> list[str]:
    """The record's k words with the highest scores toward its target (for tables and reports)."""
    tokens = [t for t in record["tokens"] if any(c.isalnum() for c in t["text"])]
    order = np.argsort([-t["score"] for t in tokens], kind="stable")[:k]
    return [tokens[i]["text"] for i in order if tokens[i]["score"] > 0]


__all__ = [
    "DEFAULTS",
    "METHODS",
    "explain",
    "explain_mistakes",
    "fitting_methods",
    "highlight_html",
    "pick_method",
    "top_words",
]
