import itertools

import numpy as np
import pytest
from pydantic import ValidationError

from medsent.core.config import TierConfig
from medsent.evaluation.tiers import threshold_sweep, tier_table
from medsent.inference.decisions import tier_of


def test_tier_boundaries_follow_the_study() -> None:
    cfg = TierConfig()
    assert [tier_of(c, cfg) for c in (0.95, 0.70, 0.69, 0.50, 0.49)] == [
        "auto",
        "auto",
        "review",
        "review",
        "manual",
    ]
    with pytest.raises(ValidationError):
        TierConfig(auto=0.5, review=0.6)


def test_tier_table_and_sweep() -> None:
    proba = np.array([[0.9, 0.05, 0.05], [0.6, 0.3, 0.1], [0.4, 0.35, 0.25], [0.1, 0.1, 0.8]])
    y = np.array([0, 1, 0, 2])
    table = tier_table(y, proba, TierConfig())
    assert table["auto"] == {"n": 2, "coverage": 0.5, "accuracy": 1.0}
    assert table["review"]["accuracy"] == 0.0 and table["manual"]["accuracy"] == 1.0
    assert tier_table(y[:1], proba[:1], TierConfig())["manual"]["accuracy"] is None
    sweep = threshold_sweep(y, proba)
    assert sweep[0]["coverage"] == 1.0 and sweep[-1]["coverage"] == 0.0
    assert all(a["coverage"] >= b["coverage"] for a, b in itertools.pairwise(sweep))
