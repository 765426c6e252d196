"""Negation scope tagging for word-level models ("not effective" -> "not NEG_effective").

Bag-of-words and word-embedding models cannot see that "no side effects" is good news; marking the
tokens inside a negation's scope gives them a separate feature. The scope runs from the cue to the
next clause boundary (punctuation or a contrastive conjunction), as in the reference study.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

NEG_PREFIX = "NEG_"

NEGATION_CUES = frozenset(
    {
        "no",
        "not",
        "never",
        "without",
        "none",
        "nobody",
        "nothing",
        "neither",
        "nor",
        "nowhere",
        "cannot",
        "cant",
        "dont",
        "didnt",
        "doesnt",
        "isnt",
        "wasnt",
        "werent",
        "wont",
        "wouldnt",
        "couldnt",
        "shouldnt",
        "havent",
        "hasnt",
        "hadnt",
        "arent",
        "aint",
        "denied",
        "denies",
        "deny",
        "lack",
        "lacks",
        "lacked",
        "hardly",
        "barely",
        "rarely",
    }
)

CLAUSE_BREAKERS = frozenset({"but", "however", "although", "though", "yet", "except", "whereas", "while"})

# Words (keeping in-word apostrophes), or single punctuation marks that end a clause.
_TOKEN = re.compile(r"[A-Za-z0-9]+(?:['’][A-Za-z]+)*|[.,;:!?()\[\]]")
_BOUNDARY = frozenset(".,;:!?()[]")


def tokenize(text: str, lowercase: bool = True) -> list[str]:
    """Word tokens plus clause punctuation; other symbols are dropped."""
    if lowercase:
        text = text.lower()
    return _TOKEN.findall(text)


def _is_cue(token: str) -> bool:
    bare = token.lower().replace("'", "").replace("’", "")
    return bare in NEGATION_CUES or (bare.endswith("nt") and token.lower().endswith(("n't", "n’t")))


_ENDS, _CUE, _WORD = 0, 1, 2
_KINDS: dict[str, int] = {}  # token -> what it does to a scope; reviews repeat their words endlessly


def _kind(tok: str) -> int:
    kind = _KINDS.get(tok)
    if kind is None:
        if tok in _BOUNDARY or tok.lower() in CLAUSE_BREAKERS:
            kind = _ENDS
        else:
            kind = _CUE if _is_cue(tok) else _WORD
        if len(_KINDS) < 1_000_000:
            _KINDS[tok] = kind
    return kind


def tag_tokens(tokens: Iterable[str]) -> list[str]:
    """Prefix tokens in a negation scope with NEG_; punctuation is kept as a boundary token."""
    out: list[str] = []
    append = out.append
    in_scope = False
    kinds = _KINDS
    for tok in tokens:
        kind = kinds.get(tok)
        if kind is None:
            kind = _kind(tok)
        if kind == _WORD:
            append(NEG_PREFIX + tok if in_scope else tok)
        else:
            in_scope = kind == _CUE
            append(tok)
    return out


def negation_tag(text: str, lowercase: bool = True) -> str:
    """Tokenize, tag and re-join with spaces; punctuation tokens are dropped from the output."""
    boundary = _BOUNDARY
    return " ".join([t for t in tag_tokens(tokenize(text, lowercase)) if t not in boundary])


def model_text(text: str, negation: bool, lowercase: bool = True) -> str:
    """The text a word-level model sees: tokenized, optionally negation-tagged, space-joined."""
    if negation:
        return negation_tag(text, lowercase)
    return " ".join(t for t in tokenize(text, lowercase) if t not in _BOUNDARY)
