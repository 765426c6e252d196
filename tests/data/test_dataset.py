from pathlib import Path

import pandas as pd
import pytest

from medsent.core.config import CleanConfig, DataConfig, SplitConfig, build_config
from medsent.core.errors import ConfigError, DataError
from medsent.data.clean import dedupe_key
from medsent.data.dataset import load_labeled, load_unlabeled, make_splits
from medsent.data.presets import preset_layer
from tests.conftest import ASKAPATIENT, WEBMD_VAL, demo_as_webmd


def _webmd() -> DataConfig:
    return build_config({"data": preset_layer("webmd")}).data


def test_webmd_preset_maps_satisfaction_1_to_5(train_csv: Path) -> None:
    data = load_labeled(train_csv, _webmd(), CleanConfig())
    raw = pd.read_csv(train_csv)
    kept = raw[raw["satisfaction"].notna()]
    assert set(data.frame["label"]) == {0, 1, 2}
    assert len(data.frame) <= len(kept)
    steps = [s["step"] for s in data.report.to_dict()["steps"]]
    assert steps[0] == "rows read" and "drop exact duplicates" in steps


def test_askapatient_second_schema_loads_with_its_preset(shared_file) -> None:  # type: ignore[no-untyped-def]
    cfg = build_config({"data": preset_layer("askapatient")}).data
    data = load_labeled(shared_file(ASKAPATIENT), cfg, CleanConfig())
    counts = data.class_counts()
    assert all(counts[k] > 100 for k in counts)


def test_second_schema_with_rating_column_and_its_preset(demo_files: dict[str, Path], tmp_path: Path) -> None:
    """AskaPatient's layout (review, rating 1-5, drug, condition, source), made up from the demo."""
    frame = demo_as_webmd(demo_files, "train", 200, seed=4)
    frame = frame.rename(columns={"satisfaction": "rating"})[
        ["review", "rating", "drug", "condition", "source"]
    ]
    path = tmp_path / "aska.csv"
    frame.to_csv(path, index=False)
    data = load_labeled(path, build_config({"data": preset_layer("askapatient")}).data, CleanConfig())
    expected = frame["rating"].map(lambda r: 0 if r <= 2 else 1 if r == 3 else 2).value_counts()
    counts = data.frame["label"].value_counts()
    dropped = len(frame) - len(data.frame)  # cleaning only ever drops rows (duplicates, too short)
    assert set(counts.index) == {0, 1, 2} and dropped <= 5
    assert all(0 <= expected[k] - counts[k] <= dropped for k in range(3))


def test_unknown_preset_lists_known_ones() -> None:
    with pytest.raises(ConfigError, match="known: askapatient, drugscom, webmd"):
        preset_layer("yelp")


def test_missing_column_lists_columns_found(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("body,stars\nfine drug for me,3\n")
    with pytest.raises(DataError, match=r"text column 'review' not found \(columns found: body, stars\)"):
        load_labeled(path, _webmd(), CleanConfig())
    with pytest.raises(DataError, match="rating column 'satisfaction' not found"):
        load_labeled(path, _webmd().model_copy(update={"text_col": "body"}), CleanConfig())


def test_ratings_outside_scale_are_counted_and_dropped_or_refused_when_strict(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("review,satisfaction\nworked well for me,5\nno good at all,9\nit was okay I guess,3\n")
    data = load_labeled(path, _webmd(), CleanConfig())
    assert data.frame["label"].tolist() == [2, 1]
    assert any("1 ratings outside the scale 1-5" in n for n in data.report.notes)
    with pytest.raises(DataError, match=r"outside the scale.*--strict"):
        load_labeled(path, _webmd().model_copy(update={"strict": True}), CleanConfig())


def test_label_column_with_names_and_unknown_labels(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text(
        '{"text": "worked well for me", "label": "positive"}\n'
        '{"text": "made me very sick", "label": "bad"}\n'
        '{"text": "it was just okay", "label": 1}\n'
    )
    cfg = DataConfig(text_col="text", label_col="label")
    data = load_labeled(path, cfg, CleanConfig())
    assert data.frame["label"].tolist() == [2, 1]
    assert "1 labels not in" in data.report.notes[0]


def test_no_rows_left_after_cleaning(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("review,satisfaction\nok,3\n,4\n")
    with pytest.raises(DataError, match=r"no rows left after cleaning \(2 read; drop missing text: 1; "):
        load_labeled(path, _webmd(), CleanConfig())


def test_ratings_all_off_the_scale_are_named_as_the_reason(tmp_path: Path) -> None:
    """Every rating 7-9 on a 1-5 preset: the error says how many rows fell outside the scale."""
    path = tmp_path / "x.csv"
    path.write_text("review,satisfaction\ngood stuff here,7\nbad stuff here,9\nmeh stuff,8\n")
    with pytest.raises(DataError, match=r"\(3 read; drop rating outside scale 1-5: 3\)$"):
        load_labeled(path, _webmd(), CleanConfig())


def test_stratified_split_sizes_and_class_shares(train_csv: Path) -> None:
    frame = load_labeled(train_csv, _webmd(), CleanConfig()).frame
    splits = make_splits(frame, None, None, SplitConfig(), seed=3)
    n = len(frame)
    assert abs(len(splits.test) - 0.2 * n) <= 2 and abs(len(splits.val) - 0.1 * n) <= 2
    share = frame["label"].value_counts(normalize=True)
    assert (splits.train["label"].value_counts(normalize=True) - share).abs().max() < 0.02
    again = make_splits(frame, None, None, SplitConfig(), seed=3)
    assert again.test["text"].tolist() == splits.test["text"].tolist()


def test_leakage_guard_removes_held_out_texts_from_training(train_csv: Path) -> None:
    frame = load_labeled(train_csv, _webmd(), CleanConfig()).frame
    val = frame.iloc[:30].copy()
    val["text"] = val["text"].str.upper() + "!!"  # same review, different case and punctuation
    splits = make_splits(frame, val.reset_index(drop=True), None, SplitConfig(test_frac=0), seed=0)
    assert splits.info["leakage_removed"]["train_in_val_or_test"] == 30
    train_keys = set(splits.train["text"].map(dedupe_key))
    assert not train_keys & set(val["text"].map(dedupe_key))


def test_a_class_with_no_examples_is_refused(tmp_path: Path) -> None:
    frame = pd.DataFrame({"text": [f"review number {i} text" for i in range(20)], "label": [0, 2] * 10})
    with pytest.raises(DataError, match=r"class Neutral has no examples.*20 rows in 2 classes"):
        make_splits(frame, None, None, SplitConfig(val_frac=0, test_frac=0), seed=0)
    with pytest.raises(DataError, match=r"stratified 20% test split from 20 rows in 2 classes"):
        make_splits(frame, None, None, SplitConfig(), seed=0)


@pytest.mark.parametrize(
    "labels, fragment",
    [
        ([2], "from 1 row in 1 class (Negative 0, Neutral 0, Positive 1)"),
        ([0, 1, 2, 2], "from 4 rows in 3 classes (Negative 1, Neutral 1, Positive 2)"),
        # The test split works (3 of 12); 10% of the 9 left for validation cannot hold 3 classes.
        ([0, 0, 1, 2, 2, 2] * 2, "10% val split from 9 rows in 3 classes"),
    ],
)
def test_splits_that_cannot_be_made_say_what_was_found_and_needed(labels: list[int], fragment: str) -> None:
    frame = pd.DataFrame({"text": [f"review number {i} text" for i in range(len(labels))], "label": labels})
    with pytest.raises(DataError) as err:
        make_splits(frame, None, None, SplitConfig(), seed=0)
    msg = str(err.value)
    assert fragment in msg and "needs at least 2 rows of every class" in msg and "\n" not in msg


def test_the_smallest_splittable_pool_splits_with_every_class_on_each_side() -> None:
    labels = [0, 1, 2] * 5  # 15 rows: 3 to test, then 2 to val would leave val without a class
    frame = pd.DataFrame({"text": [f"review number {i} text" for i in range(15)], "label": labels})
    splits = make_splits(frame, None, None, SplitConfig(val_frac=0, test_frac=0.2), seed=0)
    assert sorted(splits.test["label"]) == [0, 1, 2] and len(splits.train) == 12


def test_validation_file_of_the_study_is_readable(shared_file) -> None:  # type: ignore[no-untyped-def]
    data = load_labeled(shared_file(WEBMD_VAL), _webmd(), CleanConfig())
    assert 1200 <= len(data.frame) <= 1237


def test_unlabelled_reviews_are_text_only_and_cleaned(tmp_path: Path) -> None:
    path = tmp_path / "eff_only.csv"
    pd.DataFrame(
        {
            "review": ["Worked well for my pain.", "", "Did nothing at all for me.", "Fine, I suppose."],
            "effectiveness": [5, 4, 9, None],
        }
    ).to_csv(path, index=False)
    frame = load_unlabeled(path, DataConfig(), CleanConfig(min_words=1)).frame
    assert frame["text"].tolist() == [
        "Worked well for my pain.",
        "Did nothing at all for me.",
        "Fine, I suppose.",
    ]
    assert (frame["label"] == -1).all() and list(frame.columns) == ["text", "label"]
