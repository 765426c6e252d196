"""The fast n-gram counters give the very matrix scikit-learn's vectorizers give (bit for bit)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medsent.data.clean import normalize_text
from medsent.inference.predict import Predictor
from medsent.models.ngrams import CharWbCounter, WordNgramCounter

ODD = [
    "",
    "   ",
    "a",
    "ab",
    "I",
    "Caf\u00e9 cr\u00e8me BR\u00dcLEE \u00e9t\u00e9",
    "tabs\tand\nnewlines\r\nand  double  spaces",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "NEG_good NEG_good NEG_good not not",
    "10mg 2x/day... \u201cquoted\u201d \u2014 dash \u00bd",
    "\u00a0non-breaking\u2003spaces\u2028here",
    "\ud83d\ude00 emoji only",
]


def _same(a, b) -> bool:  # type: ignore[no-untyped-def]
    return (
        a.shape == b.shape
        and np.array_equal(a.indptr, b.indptr)
        and np.array_equal(a.indices, b.indices)
        and np.array_equal(a.data, b.data)
        and a.dtype == b.dtype
    )


@pytest.fixture(scope="module")
def svm(svm_run: Path):  # type: ignore[no-untyped-def]
    return Predictor(svm_run)


def test_counters_equal_sklearn_on_real_reviews_and_odd_strings(svm, train_csv: Path, val_csv: Path) -> None:  # type: ignore[no-untyped-def]
    raw = pd.concat([pd.read_csv(train_csv), pd.read_csv(val_csv)])["review"].fillna("").tolist()
    texts = [normalize_text(t, svm.config.clean) for t in raw] + ODD
    model = svm.model
    views = model.views(texts)
    for branch, cls in (("char", CharWbCounter), ("word", WordNgramCounter)):
        vec = model.vectorizers[branch]
        counter = cls(vec)
        want = vec.transform(views[branch])
        assert _same(counter.transform(views[branch]), want)
        assert _same(counter.transform(views[branch]), want)  # warm cache: same again
        assert _same(counter.transform(views[branch][::-1]), vec.transform(views[branch][::-1]))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.text(alphabet=st.sampled_from(list("abcdeAB \u00e9\u00fc1.,'\t\n")), max_size=40),
        min_size=1,
        max_size=6,
    )
)
def test_counters_equal_sklearn_on_generated_text(svm, docs: list[str]) -> None:  # type: ignore[no-untyped-def]
    model = svm.model
    for branch, cls in (("char", CharWbCounter), ("word", WordNgramCounter)):
        vec = model.vectorizers[branch]
        view = model.views(docs)[branch]
        assert _same(cls(vec).transform(view), vec.transform(view))
