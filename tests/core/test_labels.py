from medsent.core.labels import LABELS, parse_label


def test_names_aliases_and_ids_map_to_class_ids() -> None:
    assert [parse_label(x) for x in ("Negative", " neutral ", "POS", 0, "1", 2.0)] == [0, 1, 2, 0, 1, 2]


def test_values_outside_the_scheme_are_not_labels() -> None:
    assert [parse_label(x) for x in ("great", 3, -1, 1.5, None, float("nan"))] == [None] * 6
    assert LABELS == ("Negative", "Neutral", "Positive")
