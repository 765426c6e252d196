"""Fast n-gram counting for a fitted TfidfVectorizer, with the very same output as its ``transform``.

scikit-learn builds every n-gram of every review as a Python string. Character n-grams inside word
boundaries (``char_wb``) depend only on the word, and reviews repeat words endlessly, so here each
distinct word's n-gram counts are computed once (and cached), and a review's counts are the sum over
its words: a (reviews x words) count matrix times a (words x n-grams) one, in scipy. Word 1-2 grams
are counted over integer token codes. Counts then go through the vectorizer's own TfidfTransformer,
so the result is the same matrix as ``vectorizer.transform`` (tested bit for bit), 5-20x faster.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

_WHITE_SPACES = re.compile(r"\s\s+")  # sklearn's _white_spaces


def _counts_matrix(rows: np.ndarray, cols: np.ndarray, n_rows: int, n_cols: int) -> sp.csr_matrix:
    """CSR counts of (row, col) pairs, duplicates summed, indices sorted (as CountVectorizer's)."""
    data = np.ones(len(rows), dtype=np.float32)
    x = sp.csr_matrix((data, (rows, cols)), shape=(n_rows, n_cols), dtype=np.float32)
    x.sum_duplicates()
    x.sort_indices()
    return x


class _GrowingCsr:
    """Rows appended once and gathered many times: a CSR matrix in amortised-doubling arrays."""

    def __init__(self, n_cols: int) -> None:
        self.n_cols = n_cols
        self.indptr = np.zeros(1, dtype=np.int64)
        self.indices = np.zeros(1024, dtype=np.int64)
        self.data = np.zeros(1024, dtype=np.float32)
        self.nnz = 0

    def append(self, rows: list[tuple[np.ndarray, np.ndarray]]) -> None:
        lengths = np.fromiter((len(i) for i, _ in rows), dtype=np.int64, count=len(rows))
        need = self.nnz + int(lengths.sum())
        if need > len(self.indices):
            size = max(need, 2 * len(self.indices))
            self.indices = np.resize(self.indices, size)
            self.data = np.resize(self.data, size)
        if rows:
            self.indices[self.nnz : need] = np.concatenate([i for i, _ in rows])
            self.data[self.nnz : need] = np.concatenate([c for _, c in rows])
        self.indptr = np.concatenate([self.indptr, self.nnz + np.cumsum(lengths)])
        self.nnz = need

    def rows(self, ids: np.ndarray) -> sp.csr_matrix:
        starts, ends = self.indptr[ids], self.indptr[ids + 1]
        lengths = ends - starts
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        # positions starts[r] .. ends[r] of every requested row, in one vectorised gather
        offsets = np.arange(indptr[-1], dtype=np.int64) - np.repeat(indptr[:-1] - starts, lengths)
        return sp.csr_matrix(
            (self.data[offsets], self.indices[offsets], indptr),
            shape=(len(ids), self.n_cols),
            dtype=np.float32,
        )


class CharWbCounter:
    """``char_wb`` n-gram features of a fitted vectorizer, from a per-word cache."""

    def __init__(self, vectorizer: Any, max_cache_words: int = 500_000) -> None:
        self.vectorizer = vectorizer
        self.vocabulary: dict[str, int] = vectorizer.vocabulary_
        self.min_n, self.max_n = vectorizer.ngram_range
        self.preprocess = vectorizer.build_preprocessor()
        self.n_features = len(self.vocabulary)
        self.max_cache_words = max_cache_words
        self._reset()

    def _reset(self) -> None:
        self._word_id: dict[str, int] = {}
        self._matrix = _GrowingCsr(self.n_features)

    def _word_features(self, word: str) -> tuple[np.ndarray, np.ndarray]:
        """Feature ids and counts of one word's n-grams (sklearn's _char_wb_ngrams, restricted to the
        vocabulary)."""
        w = f" {word} "
        w_len = len(w)
        vocab = self.vocabulary
        found: dict[int, int] = {}
        for n in range(self.min_n, self.max_n + 1):
            if n >= w_len:
                j = vocab.get(w)
                if j is not None:
                    found[j] = found.get(j, 0) + 1
                break
            for i in range(w_len - n + 1):
                j = vocab.get(w[i : i + n])
                if j is not None:
                    found[j] = found.get(j, 0) + 1
        idx = np.fromiter(found.keys(), dtype=np.int64, count=len(found))
        cnt = np.fromiter(found.values(), dtype=np.float32, count=len(found))
        return idx, cnt

    def _ids(self, words: Sequence[str]) -> np.ndarray:
        """Cache rows of the words, computing the words seen for the first time."""
        if len(self._word_id) + len(words) > self.max_cache_words:
            self._reset()
        known = self._word_id
        ids = np.fromiter((known.get(w, -1) for w in words), dtype=np.int64, count=len(words))
        new = np.flatnonzero(ids < 0).tolist()
        if new:
            rows = [self._word_features(words[k]) for k in new]
            first = len(known)
            for offset, k in enumerate(new):
                known[words[k]] = first + offset
            ids[new] = np.arange(first, first + len(new))
            self._matrix.append(rows)
        return ids

    def counts(self, docs: Sequence[str]) -> sp.csr_matrix:
        words_per_doc = [_WHITE_SPACES.sub(" ", self.preprocess(d)).split() for d in docs]
        lengths = np.fromiter((len(w) for w in words_per_doc), dtype=np.int64, count=len(words_per_doc))
        flat = [w for words in words_per_doc for w in words]
        codes, uniques = pd.factorize(pd.Series(flat, dtype=object), sort=False)
        word_ngrams = self._matrix.rows(self._ids(list(uniques)))
        doc_ids = np.repeat(np.arange(len(docs), dtype=np.int64), lengths)
        doc_words = _counts_matrix(doc_ids, np.asarray(codes, dtype=np.int64), len(docs), len(uniques))
        out = sp.csr_matrix(doc_words @ word_ngrams, dtype=np.float32)
        out.eliminate_zeros()
        out.sort_indices()
        return out

    def transform(self, docs: Sequence[str]) -> sp.csr_matrix:
        return sp.csr_matrix(self.vectorizer._tfidf.transform(self.counts(docs), copy=False))


class WordNgramCounter:
    """Whitespace-token 1..N-gram features of a fitted vectorizer (``token_pattern=r"\\S+"``,
    lowercase off: the text is already tokenized and joined by spaces), counted over token codes.

    Tokens get ids that persist across calls, and each n-gram seen once keeps its feature id in an
    integer-keyed cache, so a long job builds the n-gram strings of new n-grams only.
    """

    def __init__(self, vectorizer: Any, max_cache: int = 2_000_000) -> None:
        self.vectorizer = vectorizer
        self.vocabulary: dict[str, int] = vectorizer.vocabulary_
        self.min_n, self.max_n = vectorizer.ngram_range
        self.n_features = len(self.vocabulary)
        self.max_cache = max_cache
        self._token_ids: dict[str, int] = {}
        self._tokens: list[str] = []
        self._gram_feature: dict[int, dict[int, int]] = {}  # n -> n-gram key -> feature (or -1)

    def _ids(self, uniques: Sequence[str]) -> np.ndarray:
        ids, tokens = self._token_ids, self._tokens
        cached = sum(len(c) for c in self._gram_feature.values())
        if len(tokens) + len(uniques) >= 1 << 30 or cached > self.max_cache:
            ids.clear()
            tokens.clear()
            self._gram_feature.clear()
        out = np.empty(len(uniques), dtype=np.int64)
        for k, tok in enumerate(uniques):
            i = ids.get(tok)
            if i is None:
                i = ids[tok] = len(tokens)
                tokens.append(tok)
            out[k] = i
        return out

    def counts(self, docs: Sequence[str]) -> sp.csr_matrix:
        tokens_per_doc = [d.split() for d in docs]
        lengths = np.fromiter((len(t) for t in tokens_per_doc), dtype=np.int64, count=len(tokens_per_doc))
        flat = [t for tokens in tokens_per_doc for t in tokens]
        local, uniques = pd.factorize(pd.Series(flat, dtype=object), sort=False)
        codes = (
            self._ids(list(uniques))[np.asarray(local, dtype=np.int64)]
            if len(flat)
            else np.zeros(0, np.int64)
        )
        doc_of = np.repeat(np.arange(len(docs), dtype=np.int64), lengths)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if len(lengths) else np.zeros(0, np.int64)
        pos_in_doc = np.arange(len(flat), dtype=np.int64) - np.repeat(starts, lengths)
        doc_len = np.repeat(lengths, lengths)
        rows: list[np.ndarray] = []
        cols: list[np.ndarray] = []
        vocab, tokens = self.vocabulary, self._tokens
        base = 1 << 31  # token ids stay below 2**30: n-gram keys of n <= 2 fit in an int64
        for n in range(self.min_n, self.max_n + 1):
            cache = self._gram_feature.setdefault(n, {})
            start = np.flatnonzero(pos_in_doc + n <= doc_len)
            if not len(start):
                continue
            key = codes[start].copy()
            for k in range(1, n):
                key = key * base + codes[start + k]
            grams, gram_index = np.unique(key, return_inverse=True)
            feature_of = np.empty(len(grams), dtype=np.int64)
            for g, gram in enumerate(grams.tolist()):
                f = cache.get(gram)
                if f is None:
                    parts, rest = [], gram
                    for _ in range(n):
                        parts.append(tokens[rest % base])
                        rest //= base
                    f = cache[gram] = vocab.get(" ".join(reversed(parts)), -1)
                feature_of[g] = f
            feats = feature_of[gram_index.reshape(-1)]
            keep = feats >= 0
            rows.append(doc_of[start[keep]])
            cols.append(feats[keep])
        if not rows:
            return sp.csr_matrix((len(docs), self.n_features), dtype=np.float32)
        return _counts_matrix(np.concatenate(rows), np.concatenate(cols), len(docs), self.n_features)

    def transform(self, docs: Sequence[str]) -> sp.csr_matrix:
        return sp.csr_matrix(self.vectorizer._tfidf.transform(self.counts(docs), copy=False))
