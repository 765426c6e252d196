"""The robustness report: each test catches a fault planted in a toy model, and the command runs on
real runs with seeded, reproducible perturbations."""

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from medsent.core.config import TierConfig
from medsent.core.labels import LABELS
from medsent.evaluation.expose import expose, perturb
from medsent.inference.decisions import tier_of

REVIEWS = [
    "Metformin worked well for my diabetes, good results and excellent control.",
    "Lisinopril gave me a cough but my pressure is finally down!",
    "I took Zoloft for a month. It was excellent, good for my mood.",
    "Metformin made me sick every morning, I had to stop it.",
    "Good drug overall. Excellent results with Metformin after two weeks!",
    "Prozac did nothing for me and the nausea was bad.",
]

SPELT = {w for r in REVIEWS for w in re.findall(r"[A-Za-z]{4,}", r)}


class Toy:
    """A three-class model from a function that gives P(Positive); the rest goes to Negative."""

    def __init__(self, positive: Callable[[str], float]) -> None:
        self.positive = positive

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        p = np.array([self.positive(t) for t in texts], dtype=float)
        return np.stack([(1 - p) * 0.9, (1 - p) * 0.1, p], axis=1)

    def decide(self, proba: np.ndarray) -> np.ndarray:
        return np.asarray(proba.argmax(axis=1))

    def records(self, proba: np.ndarray) -> list[dict[str, Any]]:
        best = self.decide(proba)
        return [
            {"prediction": LABELS[b], "confidence": float(r[b]), "tier": tier_of(float(r[b]), TierConfig())}
            for r, b in zip(proba, best, strict=True)
        ]


def _steady(text: str) -> float:
    """A model that reads meaning loosely and never keys on surface form."""
    t = text.lower()
    bad = sum(w in t for w in ("sick", "nothing", "nausea", "unbearable", "worse", "not", "bad", "cough"))
    good = sum(w in t for w in ("well", "excellent", "good", "great", "recommend", "myself", "no side"))
    return float(np.clip(0.5 + 0.12 * (good - bad), 0.05, 0.69))


FAULTS: dict[str, Callable[[str], float]] = {
    "another drug's name": lambda t: 0.9 if "metformin" in t.lower() else 0.1,
    # Reads only words spelt exactly as in its vocabulary.
    "typos": lambda t: 0.9 if set(re.findall(r"[A-Za-z]{4,}", t)) & SPELT else 0.1,
    "lowercase": lambda t: 0.9 if any(c.isupper() for c in t) else 0.1,
    "no punctuation": lambda t: 0.9 if "." in t or "!" in t else 0.1,
    "extra whitespace": lambda t: 0.9 if re.fullmatch(r"(\S+ )*\S+", t) else 0.1,
    "add a negative clause": lambda t: min(0.95, len(t) / 150),
    "negation": lambda t: (
        0.9 if re.search(r"\b(work|worked|help|helped|effective|recommend)\b", t.lower()) else 0.3
    ),
    "near-empty": lambda t: 0.99,
}


def _by_name(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in report["tests"] if t["test"].startswith(name))


@pytest.mark.parametrize("test", sorted(FAULTS))
def test_each_test_catches_its_planted_fault(test: str) -> None:
    y = np.array([2, 2, 2, 0, 2, 0])
    faulty = _by_name(expose(Toy(FAULTS[test]), REVIEWS, y, ["Metformin"], seed=1, typo_rate=1.0), test)
    # Every word misspelt defeats any keyword reader, so typos are held against a constant model.
    reference = Toy(lambda t: 0.6) if test == "typos" else Toy(_steady)
    steady = _by_name(expose(reference, REVIEWS, y, ["Metformin"], seed=1, typo_rate=1.0), test)
    assert faulty["failure_rate"] >= 0.5, faulty
    assert steady["failure_rate"] <= 0.2, steady
    assert faulty["examples"]


def test_perturbations_are_seeded_and_keep_what_they_should() -> None:
    rng = lambda: np.random.default_rng(7)  # noqa: E731
    text = "Metformin worked well, though the first week was rough."
    assert perturb.typos(text, rng(), 0.5) == perturb.typos(text, rng(), 0.5) != text
    assert perturb.no_punctuation(text, rng()) == "Metformin worked well though the first week was rough"
    assert perturb.extra_whitespace(text, rng()).split() == text.split()
    swapped = perturb.swap_drug(text, rng(), ["Metformin", "Lipitor"])
    assert swapped == "Lipitor worked well, though the first week was rough."
    assert perturb.swap_drug("No drug named here", rng(), ["Metformin", "Lipitor"]) is None
    pairs = perturb.negation_pairs(rng(), 20, ["metformin"])
    assert pairs == perturb.negation_pairs(rng(), 20, ["metformin"])
    assert all(("not" in w or "bad" in w) and "not" not in b for b, w in pairs)


def test_expose_command_writes_a_reproducible_report(
    svm_run: Path, val_csv: Path, tmp_path: Path, cli
) -> None:  # type: ignore[no-untyped-def]
    first, again = tmp_path / "a", tmp_path / "b"
    for out in (first, again):
        result = cli("expose", svm_run, "--data", val_csv, "--sample", 60, "--seed", 5, "--out", out)
        assert result.code == 0 and "| typos" in result.out
    a = json.loads((first / "robustness.json").read_text())
    b = json.loads((again / "robustness.json").read_text())
    assert a["tests"] == b["tests"] and len(a["tests"]) == 13
    assert {t["kind"] for t in a["tests"]} == {"invariance", "directional", "negation", "out_of_distribution"}
    assert _by_name(a, "lowercase")["macro_f1_before"] is not None
    assert "# Robustness of svm" in (first / "robustness.md").read_text()
    bad = cli("expose", svm_run, "--data", val_csv, "--typo-rate", 2)
    assert bad.code == 2 and "--typo-rate" in bad.err
