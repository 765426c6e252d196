"""Text repairs skip ftfy only where it could not change anything."""

import ftfy
from hypothesis import given, settings
from hypothesis import strategies as st

from medsent.core.config import CleanConfig
from medsent.data import clean
from medsent.data.clean import _FTFY_NEEDED, normalize_text

SAFE = st.text(
    alphabet=st.sampled_from([chr(c) for c in range(0x20, 0x7F) if c != 0x26] + ["\t", "\n"]), max_size=300
)


@settings(max_examples=300, deadline=None)
@given(SAFE)
def test_ftfy_leaves_texts_it_is_skipped_for_unchanged(text: str) -> None:
    assert _FTFY_NEEDED.search(text) is None
    assert ftfy.fix_text(text, normalization="NFC") == text


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_repairs_with_the_skip_equal_repairs_without(text: str) -> None:
    slow = text
    for _, switch, fn in clean.TEXT_STEPS:
        if getattr(CleanConfig(), switch):
            slow = ftfy.fix_text(slow, normalization="NFC") if switch == "fix_encoding" else fn(slow)
    assert normalize_text(text, CleanConfig()) == slow


def test_mojibake_and_entities_still_go_through_ftfy() -> None:
    assert normalize_text("The drug didnâ€™t help", CleanConfig()) == "The drug didn't help"
    assert _FTFY_NEEDED.search("Tom &amp; Jerry") and _FTFY_NEEDED.search("x\r\ny")
