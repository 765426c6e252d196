"""Cleaning raw review scrapes, every step counted so the user sees where rows went."""

from __future__ import annotations

import bisect
import html
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ftfy
import pandas as pd

from medsent.core.config import CleanConfig

_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_WS = re.compile(r"\s+")
_NON_WORD = re.compile(r"[^\w\s]", re.UNICODE)
_ELLIPSIS_END = re.compile(r"(?:\.{3,}|…)\s*$")
_WORD = re.compile(r"\w+", re.UNICODE)

# A small list of very frequent English function words, for the optional English-only filter.
_EN_STOP = frozenset(
    [
        "the",
        "a",
        "an",
        "and",
        "or",
        "but",
        "i",
        "me",
        "my",
        "it",
        "is",
        "was",
        "to",
        "of",
        "in",
        "on",
        "for",
        "with",
        "this",
        "that",
        "have",
        "had",
        "has",
        "be",
        "been",
        "not",
        "no",
        "it's",
        "i'm",
        "am",
        "are",
        "were",
        "at",
        "as",
        "so",
        "if",
        "do",
        "did",
        "does",
        "my",
        "after",
        "before",
        "from",
        "they",
        "he",
        "she",
        "we",
        "you",
        "take",
        "took",
        "taking",
        "very",
    ]
)
# Function words of the languages most often mixed into English review scrapes.
_FOREIGN_STOP = frozenset(
    [
        "el",
        "la",
        "los",
        "las",
        "del",
        "que",
        "y",
        "en",
        "con",
        "por",
        "para",
        "una",
        "un",
        "es",
        "muy",
        "mucho",
        "pero",
        "como",
        "esta",
        "este",
        "le",
        "les",
        "des",
        "et",
        "est",
        "pas",
        "pour",
        "avec",
        "une",
        "dans",
        "sur",
        "qui",
        "der",
        "die",
        "das",
        "und",
        "ist",
        "nicht",
        "mit",
        "ich",
        "ein",
        "eine",
        "auf",
    ]
)


# A review must hold one character outside this class to be scored: whitespace as Python and
# ECMAScript each define it, plus control characters. Spelled as an explicit class, not \S, because
# regex engines disagree on \S (Python counts U+001C-U+001F as space, the Rust engine schema
# validators use does not); the REST schema states this very pattern, so the schema, the service,
# file scoring and the Python API draw the same line.
_BLANK = r"\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
TEXT_PATTERN = f"[^{_BLANK}]"
_HAS_TEXT = re.compile(TEXT_PATTERN)


def is_blank(text: str) -> bool:
    """Nothing to read: only spaces and control characters (such a review gets no label)."""
    return not _HAS_TEXT.search(text)


@dataclass
class StepCount:
    """One cleaning step: rows before/after and rows whose text it changed."""

    step: str
    rows_in: int
    rows_out: int
    changed: int = 0

    @property
    def dropped(self) -> int:
        return self.rows_in - self.rows_out


@dataclass
class CleaningReport:
    steps: list[StepCount] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, step: str, rows_in: int, rows_out: int, changed: int = 0) -> None:
        self.steps.append(StepCount(step, rows_in, rows_out, changed))

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": [
                {
                    "step": s.step,
                    "rows_in": s.rows_in,
                    "rows_out": s.rows_out,
                    "dropped": s.dropped,
                    "changed": s.changed,
                }
                for s in self.steps
            ],
            "notes": list(self.notes),
        }

    def to_markdown(self) -> str:
        lines = ["| step | rows in | rows out | dropped | changed |", "|---|---:|---:|---:|---:|"]
        for s in self.steps:
            lines.append(f"| {s.step} | {s.rows_in} | {s.rows_out} | {s.dropped} | {s.changed} |")
        return "\n".join(lines)


def _unescape(text: str) -> str:
    # Twice: scrapes hold double-escaped entities such as "&amp;#039;". No '&', no entity.
    if "&" not in text:
        return text
    return html.unescape(html.unescape(text))


# ftfy can only change a text holding something other than printable ASCII, tab or newline, or an
# '&' (HTML entities): measured on the 48K shared reviews, it changed none of the 88% without any.
_FTFY_NEEDED = re.compile(r"[^\t\n\x20-\x25\x27-\x7e]")


def _fix_encoding(text: str) -> str:
    if _FTFY_NEEDED.search(text) is None:
        return text
    return ftfy.fix_text(text, normalization="NFC")


def _strip_urls(text: str) -> str:
    if "://" not in text and "www." not in text.lower():  # neither part of the pattern: no URL
        return text
    return _URL.sub(" ", text)


def _normalize_whitespace(text: str) -> str:
    # str.split() and the regex \s agree on what whitespace is (str.isspace); the join is 3x faster.
    text = " ".join(text.split())
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1].strip()
    return text


# The text repairs, in order: (report name, CleanConfig switch, function). Training counts each one;
# prediction runs the same list, so both see identical text.
TEXT_STEPS: tuple[tuple[str, str, Callable[[str], str]], ...] = (
    ("unescape HTML entities", "unescape_html", _unescape),
    ("repair broken encoding (ftfy)", "fix_encoding", _fix_encoding),
    ("strip URLs", "strip_urls", _strip_urls),
    ("normalise whitespace and wrapping quotes", "normalize_whitespace", _normalize_whitespace),
)


def normalize_text(text: str, cfg: CleanConfig) -> str:
    """The text-level repairs, also applied to every text at prediction time."""
    for _, switch, fn in TEXT_STEPS:
        if getattr(cfg, switch):
            text = fn(text)
    return text


def dedupe_key(text: str) -> str:
    """Normalised form for duplicate and leakage matching: case, accents, punctuation and spacing."""
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return _WS.sub(" ", _NON_WORD.sub(" ", text)).strip()


def word_count(text: str) -> int:
    return len(_WORD.findall(text))


def looks_english(text: str) -> bool:
    """Cheap test: mostly Latin letters, and more English than foreign function words."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return False
    ascii_share = sum(c.isascii() for c in letters) / len(letters)
    words = [w.lower() for w in _WORD.findall(text)]
    english = sum(w in _EN_STOP for w in words)
    foreign = sum(w in _FOREIGN_STOP for w in words)
    return ascii_share > 0.9 and english >= foreign and (english > 0 or len(words) < 4)


def _apply_step(
    frame: pd.DataFrame, report: CleaningReport, name: str, enabled: bool, fn: Any
) -> pd.DataFrame:
    """Apply a text-rewriting step and count the rows it changed."""
    if not enabled:
        return frame
    new = frame["text"].map(fn)
    changed = int((new != frame["text"]).sum())
    frame = frame.assign(text=new)
    report.add(name, len(frame), len(frame), changed)
    return frame


def _filter(frame: pd.DataFrame, report: CleaningReport, name: str, keep: pd.Series) -> pd.DataFrame:
    out = frame.loc[keep.to_numpy().astype(bool)]
    report.add(name, len(frame), len(out))
    return out


def truncated_duplicates(keys: list[str], raw: list[str]) -> list[bool]:
    """Rows that are a '...'-cut copy of a longer row (scrapes cut reviews at ~400 characters)."""
    ordered = sorted(set(keys))
    flags = []
    for key, text in zip(keys, raw, strict=True):
        if not _ELLIPSIS_END.search(text) or len(key) < 40:
            flags.append(False)
            continue
        i = bisect.bisect_left(ordered, key)
        longer = False
        while i < len(ordered) and ordered[i].startswith(key):
            if len(ordered[i]) > len(key):
                longer = True
                break
            i += 1
        flags.append(longer)
    return flags


def clean_frame(frame: pd.DataFrame, cfg: CleanConfig, report: CleaningReport) -> pd.DataFrame:
    """Run every enabled step over a frame with a ``text`` column; returns the kept rows."""
    for name, switch, fn in TEXT_STEPS:
        frame = _apply_step(frame, report, name, getattr(cfg, switch), fn)
    frame = _filter(frame, report, "drop empty text", frame["text"].str.strip().str.len() > 0)
    counts = frame["text"].map(word_count)
    frame = _filter(frame, report, f"drop shorter than {cfg.min_words} words", counts >= cfg.min_words)
    counts = frame["text"].map(word_count)
    frame = _filter(frame, report, f"drop longer than {cfg.max_words} words", counts <= cfg.max_words)
    if cfg.english_only:
        frame = _filter(frame, report, "drop non-English", frame["text"].map(looks_english))
    if cfg.dedupe_exact:
        frame = _filter(frame, report, "drop exact duplicates", ~frame["text"].duplicated())
    if cfg.dedupe_normalized or cfg.dedupe_truncated:
        keys = frame["text"].map(dedupe_key)
        if cfg.dedupe_normalized:
            dup = keys.duplicated()
            frame, keys = frame.loc[~dup.to_numpy()], keys.loc[~dup.to_numpy()]
            report.add("drop normalised duplicates", len(dup), len(frame))
        if cfg.dedupe_truncated:
            cut = truncated_duplicates(keys.tolist(), frame["text"].tolist())
            keep = pd.Series([not c for c in cut], index=frame.index)
            frame = _filter(frame, report, "drop '...'-truncated copies", keep)
    return frame.reset_index(drop=True)
