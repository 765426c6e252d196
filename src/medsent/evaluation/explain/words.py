"""Words as a reader sees them, and the way back to them from what a model read.

Every explanation is given on the reader's tokens: words (with in-word apostrophes) and single
punctuation marks, as character spans of the original review. Models read other units (negation-
tagged words, word pieces, character n-grams); each method maps its units onto these spans.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

from medsent.data.negation import _BOUNDARY, _TOKEN

# Every non-space character belongs to exactly one reader token.
READER_TOKEN = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]")

Span = tuple[int, int]
_SPACES = re.compile(r"\s{2,}")


def reader_spans(text: str) -> list[Span]:
    return [m.span() for m in READER_TOKEN.finditer(text)]


def covering(spans: Sequence[Span], start: int, end: int) -> list[int]:
    """Indices of the reader tokens that overlap the characters ``[start, end)``."""
    return [i for i, (s, e) in enumerate(spans) if s < end and start < e]


def model_word_tokens(text: str, spans: Sequence[Span]) -> list[list[int]]:
    """For each word a word-level model reads (``data.negation.model_text``: its tokens, clause
    punctuation dropped), the reader tokens it came from."""
    return [covering(spans, *m.span()) for m in _TOKEN.finditer(text) if m.group(0) not in _BOUNDARY]


def to_original(original: str, cleaned: str, spans: Sequence[Span]) -> list[Span]:
    """Spans in the cleaned text moved onto the original review (cleaning may fix encodings, unescape
    HTML or squeeze whitespace); identical texts need no work."""
    if original == cleaned:
        return list(spans)
    ops = difflib.SequenceMatcher(None, cleaned, original, autojunk=False).get_opcodes()

    def move(pos: int, end: bool) -> int:
        for _tag, c0, c1, o0, o1 in ops:
            if c0 <= pos < c1 or (end and c0 < pos <= c1):
                if _tag == "equal":
                    return o0 + (pos - c0)
                return o1 if end else o0
        return len(original)

    return [(move(s, False), max(move(e, True), move(s, False))) for s, e in spans]


def without(text: str, spans: Sequence[Span], drop: Sequence[bool]) -> str:
    """The text with the dropped tokens cut out where they stand; the whitespace they leave behind
    is squeezed to one space. Nothing dropped: the text itself."""
    if not any(drop):
        return text
    pieces, pos = [], 0
    for (s, e), gone in zip(spans, drop, strict=True):
        if gone:
            pieces.append(text[pos:s])
            pos = e
    pieces.append(text[pos:])
    return _SPACES.sub(" ", "".join(pieces)).strip()
