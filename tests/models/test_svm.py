from pathlib import Path

import numpy as np
import pytest

from medsent.core.config import CleanConfig, SvmConfig, build_config
from medsent.core.errors import RunError
from medsent.data.dataset import load_labeled
from medsent.data.presets import preset_layer
from medsent.models.svm import VOCAB_FILE, SvmClassifier


@pytest.fixture(scope="module")
def frame(train_csv: Path):  # type: ignore[no-untyped-def]
    return load_labeled(train_csv, build_config({"data": preset_layer("webmd")}).data, CleanConfig()).frame


def test_balanced_probabilities_predict_the_minority_class_more_often(frame) -> None:  # type: ignore[no-untyped-def]
    texts, y = frame["text"].tolist(), frame["label"].to_numpy()
    balanced = SvmClassifier(SvmConfig(), True, True, 0).fit(texts, y)
    prior = SvmClassifier(SvmConfig(balanced_probabilities=False), True, True, 0).fit(texts, y)
    held = texts[:200]
    n_bal = int((balanced.predict_proba(held).argmax(1) == 1).sum())
    n_prior = int((prior.predict_proba(held).argmax(1) == 1).sum())
    assert n_bal > n_prior


def test_word_only_variant_and_vocab_mismatch_is_refused(frame, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = SvmConfig(char_ngrams=None)
    model = SvmClassifier(cfg, False, True, 0).fit(frame["text"].tolist(), frame["label"].to_numpy())
    model.save(tmp_path)
    with pytest.raises(RunError, match="does not match the run's config"):
        SvmClassifier.load(tmp_path, SvmConfig(), False, True, 0)
    (tmp_path / VOCAB_FILE).write_text("{not json")
    with pytest.raises(RunError, match="cannot load the SVM"):
        SvmClassifier.load(tmp_path, cfg, False, True, 0)
    proba = model.predict_proba(["works well", "terrible side effects"])
    assert np.allclose(proba.sum(axis=1), 1.0)
