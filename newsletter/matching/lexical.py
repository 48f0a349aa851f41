"""Lexical relevance: BM25 term saturation over title + abstract, read as coverage.

Raw BM25 sums are not comparable between queries, so one threshold could not serve
"LLMs" and "diffusion models for video" alike. Here every query term (words and
adjacent-word phrases) gets its BM25 idf as weight, every paper its BM25-saturated term
frequency scaled to [0, 1), and a paper's score is the idf-weighted share of the query
it covers: 0 when it shares nothing, near 1 when it uses every term, phrases included,
repeatedly. A query word no paper uses still counts in the denominator, so "speech
recognition" is only half covered by a paper about image recognition.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
from scipy import sparse

from newsletter.matching.text import terms

K1 = 1.2
B = 0.75
TITLE_REPEAT = 2  # a title word counts as often as it would in two sentences


class LexicalIndex:
    def __init__(self, documents: Sequence[tuple[str, str]]) -> None:
        """documents: (title, abstract) pairs, in candidate order."""
        counts = [Counter(_document_terms(title, abstract)) for title, abstract in documents]
        self.size = len(counts)
        vocabulary: dict[str, int] = {}
        for count in counts:
            for term in count:
                vocabulary.setdefault(term, len(vocabulary))
        self.vocabulary = vocabulary
        self.matrix = _saturation_matrix(counts, vocabulary)
        df = np.bincount(self.matrix.indices, minlength=len(vocabulary)).astype(np.float64)
        self.idf = _idf(df, self.size)
        self.unknown_idf = float(_idf(np.zeros(1), self.size)[0])

    def query_matrix(self, queries: Sequence[Sequence[str]]) -> sparse.csr_matrix:
        """One row per query (a list of terms), weights summing to 1 over all its terms."""
        rows: list[int] = []
        cols: list[int] = []
        values: list[float] = []
        for row, query in enumerate(queries):
            unique = dict.fromkeys(query)
            known = [(self.vocabulary.get(term), term) for term in unique]
            total = sum(self.unknown_idf if c is None else self.idf[c] for c, _ in known)
            for column, _term in known:
                if column is not None and total > 0:
                    rows.append(row)
                    cols.append(column)
                    values.append(float(self.idf[column]) / total)
        shape = (len(queries), len(self.vocabulary))
        return sparse.csr_matrix((values, (rows, cols)), shape=shape, dtype=np.float32)

    def scores(self, queries: sparse.csr_matrix) -> np.ndarray:
        """Coverage of each query row by each paper: a dense (queries × papers) array."""
        product = queries @ self.matrix.T
        return np.asarray(product.toarray(), dtype=np.float32)


def _document_terms(title: str, abstract: str) -> list[str]:
    return terms(title) * TITLE_REPEAT + terms(abstract)


def _saturation_matrix(counts: list[Counter[str]], vocabulary: dict[str, int]) -> sparse.csr_matrix:
    lengths = np.array([sum(c.values()) for c in counts], dtype=np.float64)
    average = float(lengths.mean()) if len(lengths) and lengths.mean() > 0 else 1.0
    rows: list[int] = []
    cols: list[int] = []
    values: list[float] = []
    for row, count in enumerate(counts):
        norm = K1 * (1 - B + B * lengths[row] / average)
        for term, tf in count.items():
            rows.append(row)
            cols.append(vocabulary[term])
            values.append(tf / (tf + norm))  # BM25's tf(k1+1)/(tf+norm), scaled to [0, 1)
    shape = (len(counts), len(vocabulary))
    return sparse.csr_matrix((values, (rows, cols)), shape=shape, dtype=np.float32)


def _idf(df: np.ndarray, n: int) -> np.ndarray:
    return np.log1p((n - df + 0.5) / (df + 0.5))
