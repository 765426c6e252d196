import pandas as pd

from medsent.core.config import CleanConfig
from medsent.data.clean import CleaningReport, clean_frame, dedupe_key, looks_english, normalize_text


def _clean(texts: list[str], **kw: object) -> tuple[list[str], CleaningReport]:
    report = CleaningReport()
    frame = pd.DataFrame({"text": texts, "label": [0] * len(texts)})
    out = clean_frame(frame, CleanConfig(**kw), report)
    return out["text"].tolist(), report


def test_entities_mojibake_urls_and_spacing_are_repaired() -> None:
    cfg = CleanConfig()
    assert normalize_text("I didn&#039;t  sleep", cfg) == "I didn't sleep"
    assert normalize_text("double &amp;#039; escaped", cfg) == "double ' escaped"
    assert normalize_text("donâ€™t take it", cfg) in ("don't take it", "don’t take it")
    assert normalize_text('"see http://spam.biz now please"', cfg) == "see now please"


def test_every_step_is_counted() -> None:
    texts, report = _clean(
        ["good drug works well", "good drug works well", "", "too short", "Good drug, works WELL!"]
    )
    assert texts == ["good drug works well"]
    steps = {s.step: s for s in report.steps}
    assert steps["drop empty text"].dropped == 1
    assert steps["drop shorter than 3 words"].dropped == 1
    assert steps["drop exact duplicates"].dropped == 1
    assert steps["drop normalised duplicates"].dropped == 1


def test_truncated_scrape_copies_are_removed_but_not_the_full_review() -> None:
    full = "This medicine helped my migraines a lot but the nausea in the first week was really hard to bear"
    cut = full[:60] + "..."
    texts, _ = _clean([cut, full, "Unrelated review that ends with dots..."])
    assert full in texts and cut not in texts
    assert "Unrelated review that ends with dots..." in texts


def test_word_limits_are_configurable() -> None:
    texts, _ = _clean(["one two", "one two three four five six"], min_words=1, max_words=3)
    assert texts == ["one two"]


def test_english_filter_is_optional() -> None:
    spanish = "Este medicamento me ayudó mucho con el dolor de cabeza"
    assert not looks_english(spanish) and looks_english("This drug helped me a lot with the pain")
    assert _clean([spanish])[0] == [spanish]
    assert _clean([spanish], english_only=True)[0] == []


def test_dedupe_key_ignores_case_punctuation_and_accents() -> None:
    assert dedupe_key("Café — GREAT!!") == dedupe_key("cafe great")


def test_training_cleaning_and_prediction_repairs_give_the_same_text() -> None:
    messy = [
        "  &amp;#039;didn&#039;t  help ",
        "donâ€™t take it http://x.biz  now please",
        '"quoted review text here"',
    ]
    cfg = CleanConfig(unescape_html=False)
    cleaned, _ = _clean(messy, unescape_html=False)
    assert cleaned == [normalize_text(t, cfg) for t in messy]
