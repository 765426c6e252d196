import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score, f1_score

from medsent.evaluation.metrics import compute_metrics, expected_calibration_error


def _onehot(ids: list[int], conf: float = 1.0) -> np.ndarray:
    out = np.full((len(ids), 3), (1 - conf) / 2)
    out[np.arange(len(ids)), ids] = conf
    return out


def test_metrics_match_sklearn_on_a_hand_made_case() -> None:
    y = np.array([0, 0, 1, 1, 2, 2, 2])
    pred = [0, 1, 1, 2, 2, 2, 0]
    m = compute_metrics(y, _onehot(pred, 0.8))
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert m["kappa"] == pytest.approx(cohen_kappa_score(y, pred))
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 1, 1], [1, 0, 2]]
    assert m["per_class"]["Positive"]["support"] == 3
    assert m["n"] == 7


def test_ece_is_zero_when_confidence_equals_accuracy_and_large_when_overconfident() -> None:
    y = np.array([0, 1, 2, 0])
    assert expected_calibration_error(y, _onehot([0, 1, 2, 0])) == pytest.approx(0.0)
    assert expected_calibration_error(y, _onehot([1, 2, 0, 1], 0.99)) == pytest.approx(0.99)
    half = _onehot([0, 1, 2, 1], 0.75)  # 3 of 4 right at 75% confidence
    assert expected_calibration_error(y, half) == pytest.approx(0.0)
