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

from collections.abc import Sequence

import numpy as np
from scipy import sparse

from newsletter.matching.text import terms

K1 = 1.2
B = 0.75
TITLE_REPEAT = 2  # a title word counts as often as it would in two sentences


class LexicalIndex:
    def __init__(self, documents: Sequence[tuple[str, str]]) -> None:
        """documents: (title, abstract) pairs, in candidate order.

        Terms are numbered in order of first use (paper by paper), and counted with
        numpy rather than a Counter per paper. The numbering fixes the order in which a
        query's terms are summed, and so the scores' rounding: numbered by first use,
        the same papers in the same order always score the same.
        """
        every: list[str] = []
        lengths = np.zeros(len(documents), dtype=np.float64)
        for row, (title, abstract) in enumerate(documents):
            found = _document_terms(title, abstract)
            lengths[row] = len(found)
            every.extend(found)
        # dict.fromkeys keeps first occurrences in order: the numbering a loop would give.
        vocabulary = {term: n for n, term in enumerate(dict.fromkeys(every))}
        columns = np.fromiter(map(vocabulary.__getitem__, every), np.int64, len(every))
        self.size = len(documents)
        self.vocabulary = vocabulary
        self.matrix = _saturation_matrix(lengths, columns, vocabulary)
        df = np.bincount(self.matrix.indices, minlength=len(vocabulary)).astype(np.float64)
        self.idf = _idf(df, self.size)
        self.unknown_idf = float(_idf(np.zeros(1), self.size)[0])
        # Weights by column, the last one for a term no paper uses (column -1).
        self._weights = np.append(self.idf, self.unknown_idf)
        # Queries multiply with the terms × papers matrix: built once, not per product.
        self.by_term = self.matrix.T.tocsr()

    def query_matrix(self, queries: Sequence[Sequence[str]]) -> sparse.csr_matrix:
        """One row per query (a list of terms), weights summing to 1 over all its terms."""
        unique = [dict.fromkeys(query) for query in queries]
        counts = np.fromiter(map(len, unique), dtype=np.intp, count=len(unique))
        find = self.vocabulary.get
        columns = np.fromiter(
            (find(term, -1) for terms_ in unique for term in terms_),
            dtype=np.intp,
            count=int(counts.sum()),
        )
        weights = self._weights[columns]
        rows = np.repeat(np.arange(len(unique)), counts)
        total = _row_totals(weights, rows, counts)[rows]
        keep = (columns >= 0) & (total > 0)
        rows, columns = rows[keep], columns[keep]
        values = weights[keep] / total[keep]
        order = np.lexsort((columns, rows))  # canonical CSR: columns sorted in each row
        indptr = np.zeros(len(unique) + 1, dtype=np.intp)
        np.cumsum(np.bincount(rows, minlength=len(unique)), out=indptr[1:])
        shape = (len(unique), len(self.vocabulary))
        return sparse.csr_matrix(
            (values[order].astype(np.float32), columns[order], indptr), shape=shape
        )

    def has_every_word(self, queries: Sequence[Sequence[str]]) -> np.ndarray:
        """queries × papers booleans: the paper uses every word of the query (phrases
        aside). A query with a word no paper uses is nowhere complete."""
        words = [[t for t in dict.fromkeys(query) if " " not in t] for query in queries]
        rows, columns = [], []
        missing = np.zeros(len(words), dtype=bool)
        for row, found in enumerate(words):
            for word in found:
                column = self.vocabulary.get(word)
                if column is None:
                    missing[row] = True
                else:
                    rows.append(row)
                    columns.append(column)
        wanted = sparse.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, columns)),
            shape=(len(words), len(self.vocabulary)),
        )
        present = self.by_term.copy()
        present.data = np.ones_like(present.data)
        counts = np.asarray((wanted @ present).toarray())
        needed = np.array([len(found) for found in words], dtype=np.float32)[:, None]
        return (counts >= needed) & ~missing[:, None]

    def scores(self, queries: sparse.csr_matrix, out: np.ndarray | None = None) -> np.ndarray:
        """Coverage of each query row by each paper: a dense (queries × papers) array.

        out: a float32 array of that shape to write into (reused between blocks: fresh
        arrays of this size cost page faults on every block).
        """
        product = queries @ self.by_term
        return np.asarray(product.toarray(out=out), dtype=np.float32)


def _document_terms(title: str, abstract: str) -> list[str]:
    return terms(title) * TITLE_REPEAT + terms(abstract)


def _row_totals(weights: np.ndarray, rows: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Each query's summed weights, added term by term in query order (as Python's sum
    did); numpy's pairwise reductions would round differently for long queries."""
    width = int(counts.max(initial=0))
    table = np.zeros((len(counts), width), dtype=np.float64)
    starts = np.cumsum(counts) - counts
    table[rows, np.arange(len(rows)) - starts[rows]] = weights
    total = np.zeros(len(counts), dtype=np.float64)
    for column in table.T:
        total += column
    return total


def _saturation_matrix(
    lengths: np.ndarray, columns: np.ndarray, vocabulary: dict[str, int]
) -> sparse.csr_matrix:
    """papers × terms: BM25's tf(k1+1)/(tf+norm), scaled to [0, 1)."""
    size = len(lengths)
    width = max(len(vocabulary), 1)
    rows = np.repeat(np.arange(size, dtype=np.int64), lengths.astype(np.int64))
    pairs, tf = np.unique(rows * width + columns, return_counts=True)
    row_of, column_of = np.divmod(pairs, width)
    average = float(lengths.mean()) if size and lengths.mean() > 0 else 1.0
    norm = K1 * (1 - B + B * lengths / average)
    values = tf / (tf + norm[row_of])
    indptr = np.zeros(size + 1, dtype=np.int64)
    np.cumsum(np.bincount(row_of, minlength=size), out=indptr[1:])
    shape = (size, len(vocabulary))
    return sparse.csr_matrix((values.astype(np.float32), column_of, indptr), shape=shape)


def _idf(df: np.ndarray, n: int) -> np.ndarray:
    return np.log1p((n - df + 0.5) / (df + 0.5))
