import numpy as np
import pandas as pd

from medsent.evaluation.analysis import by_group, confident_mistakes, confusion_heatmap, length_buckets


def test_length_buckets_cover_every_review() -> None:
    texts = ["a " * n for n in (3, 15, 30, 70, 150, 400)]
    y = np.array([0, 1, 2, 0, 1, 2])
    rows = length_buckets(texts, y, y)
    assert sum(r["n"] for r in rows) == len(texts)
    assert [r["words"] for r in rows] == ["1-20", "21-50", "51-100", "101-200", ">200"]
    assert all(r["accuracy"] == 1.0 for r in rows)


def test_groups_are_sorted_worst_first_and_small_groups_dropped() -> None:
    frame = pd.DataFrame({"condition": ["pain"] * 30 + ["acne"] * 30 + ["rare"] * 3})
    y = np.zeros(63, dtype=int)
    pred = np.array([0] * 30 + [2] * 30 + [0] * 3)
    rows = by_group(frame, "condition", y, pred, min_n=20)
    assert [r["condition"] for r in rows] == ["acne", "pain"]
    assert rows[0]["accuracy"] == 0.0 and rows[1]["accuracy"] == 1.0
    assert by_group(frame, "drug", y, pred) == []


def test_confident_mistakes_are_wrong_and_ordered(tmp_path) -> None:
    proba = np.array([[0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8], [0.6, 0.2, 0.2]])
    y = np.array([2, 1, 0, 1])
    rows = confident_mistakes(["a", "b", "c", "d"], y, proba)
    assert [r["text"] for r in rows] == ["a", "c", "d"]
    assert all(r["predicted"] != r["true"] for r in rows)
    path = confusion_heatmap([[5, 1, 0], [2, 3, 1], [0, 1, 9]], tmp_path / "cm.png", "t")
    assert path.read_bytes()[:4] == b"\x89PNG"
