"""Seeded perturbations of review text for the behaviour tests (CheckList, Ribeiro et al. 2020).

Every function takes a ``numpy.random.Generator`` and is deterministic given its seed, so a report
can be reproduced exactly and a failing example replayed.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

import numpy as np

_WORD = re.compile(r"[A-Za-z]{4,}")
_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")

# Drug names used when the data names none (and as swap partners): common across review sites.
DRUGS = (
    "lisinopril", "metformin", "sertraline", "lexapro", "zoloft", "prozac", "wellbutrin", "cymbalta",
    "lipitor", "crestor", "synthroid", "prednisone", "gabapentin", "lyrica", "tramadol", "ibuprofen",
    "xanax", "ambien", "adderall", "seroquel", "abilify", "topamax", "nexium", "humira",
)  # fmt: skip

# Clauses that make a review clearly worse or clearly better, and how they join the review.
NEGATIVE_CLAUSES = (
    "But the side effects were unbearable.",
    "But I had to stop because it made me so sick.",
    "Unfortunately it did nothing for me and I felt worse.",
)
POSITIVE_CLAUSES = (
    "Overall it worked really well for me.",
    "I finally feel like myself again and would recommend it.",
    "It works great with no side effects at all.",
)

# Minimal pairs: (the better statement, its negation); the first should read more positive.
NEGATION_TEMPLATES = (
    ("{drug} worked for my {condition}.", "{drug} did not work for my {condition}."),
    ("{drug} helped a lot.", "{drug} did not help at all."),
    ("I would recommend {drug}.", "I would not recommend {drug}."),
    ("I had no side effects on {drug}.", "I had bad side effects on {drug}."),
    ("My {condition} is finally under control.", "My {condition} is not under control."),
    ("{drug} is effective.", "{drug} is not effective."),
)
CONDITIONS = ("depression", "blood pressure", "anxiety", "pain", "diabetes", "insomnia", "migraines")

NON_ENGLISH = (
    "Este medicamento me ayudó mucho con el dolor de cabeza.",
    "Ce médicament m'a donné des nausées pendant deux semaines.",
    "Dieses Medikament hat bei mir überhaupt nicht gewirkt.",
    "Этот препарат мне очень помог.",
    "この薬はよく効きました。",
)
EMPTYISH = ("...", "?", "ok", "-", "n/a", "!!!")


def typos(text: str, rng: np.random.Generator, rate: float) -> str:
    """Each word of four or more letters, with probability ``rate``, gets one typo: two neighbouring
    inner letters swapped, or one inner letter dropped."""

    def one(m: re.Match[str]) -> str:
        word = m.group(0)
        if rng.random() >= rate:
            return word
        i = int(rng.integers(1, len(word) - 2))
        if rng.random() < 0.5:
            return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        return word[:i] + word[i + 1 :]

    return _WORD.sub(one, text)


def lowercase(text: str, rng: np.random.Generator) -> str:
    return text.lower()


def uppercase(text: str, rng: np.random.Generator) -> str:
    return text.upper()


def no_punctuation(text: str, rng: np.random.Generator) -> str:
    """Punctuation marks gone (apostrophes inside words too: 'didn't' -> 'didnt', as people type)."""
    return re.sub(r"\s{2,}", " ", _PUNCT.sub(" ", text).replace(" ' ", " ")).strip()


def extra_whitespace(text: str, rng: np.random.Generator) -> str:
    """Doubled spaces, tabs and line breaks between words, at random."""
    gaps = ("  ", "\t", "\n", " \n ")
    return re.sub(r" ", lambda m: gaps[int(rng.integers(len(gaps)))] if rng.random() < 0.3 else " ", text)


def mentions(text: str, names: Sequence[str]) -> list[str]:
    """The names in ``names`` that the text mentions as whole words (case-insensitive)."""
    low = text.lower()
    return [n for n in names if n and re.search(rf"\b{re.escape(n.lower())}\b", low)]


def swap_drug(text: str, rng: np.random.Generator, names: Sequence[str]) -> str | None:
    """The text with every drug name it mentions replaced by another drug's; None if it names none."""
    found = mentions(text, names)
    if not found:
        return None
    out = text
    for name in found:
        others = [n for n in names if n.lower() != name.lower() and n.lower() not in text.lower()]
        if not others:
            return None
        other = others[int(rng.integers(len(others)))]
        out = re.sub(rf"\b{re.escape(name)}\b", other, out, flags=re.IGNORECASE)
    return out


def add_clause(text: str, rng: np.random.Generator, clauses: Sequence[str]) -> str:
    end = "" if text.rstrip().endswith((".", "!", "?")) else "."
    return f"{text.rstrip()}{end} {clauses[int(rng.integers(len(clauses)))]}"


def negation_pairs(rng: np.random.Generator, n: int, drugs: Sequence[str]) -> list[tuple[str, str]]:
    """``n`` minimal pairs from the templates, with drugs and conditions drawn at random."""
    out = []
    for _ in range(n):
        better, worse = NEGATION_TEMPLATES[int(rng.integers(len(NEGATION_TEMPLATES)))]
        fill = {
            "drug": drugs[int(rng.integers(len(drugs)))].capitalize(),
            "condition": CONDITIONS[int(rng.integers(len(CONDITIONS)))],
        }
        out.append((better.format(**fill), worse.format(**fill)))
    return out


def random_characters(rng: np.random.Generator, length: int) -> str:
    alphabet = string.ascii_letters + string.digits + string.punctuation + "     "
    return "".join(alphabet[int(i)] for i in rng.integers(len(alphabet), size=length)).strip() or "x"


def very_long(texts: Sequence[str], rng: np.random.Generator, words: int = 3000) -> str:
    """Reviews glued together to about ``words`` words: far past any model's window."""
    out: list[str] = []
    while len(" ".join(out).split()) < words:
        out.append(texts[int(rng.integers(len(texts)))])
    return " ".join(out)
