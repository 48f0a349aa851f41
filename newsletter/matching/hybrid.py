"""The hybrid matcher: lexical coverage, semantic similarity and arXiv categories.

All interests are scored against all papers as matrices, a block of interests at a
time, so tens of thousands of unique interests cost a few matrix products rather than
a Python loop over papers. The matches of a whole block are found, ordered and cut to
the limit with array operations, and the block's arrays live in buffers allocated once
per ranking (a fresh BLOCK × papers array per step costs more in page faults than the
step's arithmetic).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import pairwise
from typing import Protocol

import numpy as np

from newsletter.matching.embedder import from_bytes
from newsletter.matching.lexical import LexicalIndex
from newsletter.matching.text import query_terms
from newsletter.matching.trending import combine, trending_scores
from newsletter.matching.types import Candidate, Interest, Match, MatchParams

BLOCK = 2048  # interests (query rows) scored at once: bounds memory to BLOCK × papers floats
CHUNK = 256  # interests whose relevance is computed at once (temporaries that fit a cache)

Query = tuple[str, ...]


def semantic_text(interest: Interest) -> str:
    """What is embedded for an interest: its text, plus a topic's keywords."""
    if not interest.keywords:
        return interest.text
    return f"{interest.text}. {', '.join(interest.keywords)}"


def query_rows(interest: Interest) -> list[Query]:
    """A free-text interest is one query; a topic matches by its name or any keyword."""
    rows = [query_terms(interest.label if interest.keywords else interest.text)]
    rows.extend(query_terms(keyword) for keyword in interest.keywords)
    return [row for row in rows if row] or [()]


def rank_hybrid(
    interests: Sequence[Interest],
    candidates: Sequence[Candidate],
    interest_vectors: np.ndarray | None,
    params: MatchParams,
    limit: int | None = None,
) -> dict[str, list[Match]]:
    if not candidates:
        return {interest.key: [] for interest in interests}
    papers = _Papers(candidates, params, semantic=interest_vectors is not None)
    queries = [query_rows(interest) for interest in interests]
    found: list[list[Match]] = [[] for _ in interests]
    for block in _blocks(len(interests)):
        vectors = None if interest_vectors is None else interest_vectors[block]
        found[block] = papers.rank_block(interests[block], queries[block], vectors, limit)
    return {interest.key: matches for interest, matches in zip(interests, found, strict=True)}


def _blocks(count: int) -> Iterator[slice]:
    """BLOCK consecutive interests at a time. The semantic product's rounding depends on
    the block's shape: fixed-size blocks make a ranking repeatable to the last bit."""
    for start in range(0, count, BLOCK):
        yield slice(start, start + BLOCK)


def _chunks(queries: Sequence[list[Query]]) -> Iterator[tuple[int, int]]:
    """Runs of interests with at most BLOCK query rows between them (or one interest),
    so that a block of topics with many keywords needs no more memory than BLOCK rows."""
    start, rows = 0, 0
    for n, found in enumerate(queries):
        if n > start and rows + len(found) > BLOCK:
            yield start, n
            start, rows = n, 0
        rows += len(found)
    if start < len(queries):
        yield start, len(queries)


class _Papers:
    """Everything about the candidates that does not depend on the interest."""

    def __init__(self, candidates: Sequence[Candidate], params: MatchParams, semantic: bool):
        self.size = len(candidates)
        self.params = params
        self.ids = np.array([c.paper_id for c in candidates], dtype=np.int64)
        self.index = LexicalIndex([(c.title, c.abstract) for c in candidates])
        self.trending = np.array(
            trending_scores(
                [(c.upvotes, c.comments) for c in candidates],
                [c.listed_at for c in candidates],
                params.half_life_days,
            )
        )
        self.vectors: np.ndarray | None = None
        self.without_vector = np.arange(self.size)
        if semantic:
            self.vectors, has_vector = _paper_vectors(candidates)
            self.without_vector = np.flatnonzero(~has_vector)
        self.categories = _CategoryIndex(candidates)
        self._buffers: dict[str, np.ndarray] = {}

    def rank_block(
        self,
        interests: Sequence[Interest],
        queries: Sequence[list[Query]],
        vectors: np.ndarray | None,
        limit: int | None,
    ) -> list[list[Match]]:
        """Each interest's matches, best first, in the order of `interests`.

        vectors: the interests' embeddings (None: by words and categories alone).
        """
        lexical = self._lexical(queries)
        semantic = None
        if vectors is not None and self.vectors is not None:
            semantic = self._buffer("semantic", len(interests))
            np.matmul(np.asarray(vectors, dtype=np.float32), self.vectors.T, out=semantic)
        bonus = self.categories.bonus(interests, self.params.category_bonus, self._buffer)
        rows, columns, relevance = self._hits(lexical, semantic, bonus)
        if not len(rows):
            return [[] for _ in interests]
        codes = _ways(lexical, semantic, bonus, rows, columns)
        return self._matches(interests, rows, columns, relevance, codes, limit)

    def _buffer(self, name: str, rows: int) -> np.ndarray:
        """`rows` × papers float32 scratch, reused from block to block (the first block
        is the largest)."""
        found = self._buffers.get(name)
        if found is None or found.shape[0] < rows:
            found = np.empty((rows, self.size), dtype=np.float32)
            self._buffers[name] = found
        return found[:rows]

    def _lexical(self, queries: Sequence[list[Query]]) -> np.ndarray:
        lexical = self._buffer("lexical", len(queries))
        for start, end in _chunks(queries):
            rows = [row for found in queries[start:end] for row in found]
            matrix = self.index.query_matrix(rows)
            if len(rows) == end - start:
                self.index.scores(matrix, out=lexical[start:end])
                continue
            scores = self.index.scores(matrix, out=self._buffer("rows", len(rows)))
            self._whole_keywords(queries[start:end], rows, scores)
            # A topic matches by its best keyword: the max over its rows.
            starts = np.cumsum([0] + [len(found) for found in queries[start : end - 1]])
            np.maximum.reduceat(scores, starts, axis=0, out=lexical[start:end])
        return lexical

    def _whole_keywords(
        self, queries: Sequence[list[Query]], rows: Sequence[Query], scores: np.ndarray
    ) -> None:
        """A topic's keyword counts only where the paper uses all of its words: for
        "text-to-image" a paper that merely mentions "text" is no match (the name row,
        the first, is scored by coverage like a typed interest)."""
        keyword_rows: list[int] = []
        at = 0
        for found in queries:
            keyword_rows.extend(range(at + 1, at + len(found)))
            at += len(found)
        several = [n for n in keyword_rows if sum(" " not in t for t in rows[n]) > 1]
        if several:
            complete = self.index.has_every_word([rows[n] for n in several])
            scores[several] = np.where(complete, scores[several], 0.0)

    def _hits(
        self, lexical: np.ndarray, semantic: np.ndarray | None, bonus: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Row, column and relevance of every matching pair (`_matching`), row by row.

        Relevance is computed CHUNK rows at a time: its temporaries stay in cache.
        """
        hits: list[np.ndarray] = []
        values: list[np.ndarray] = []
        for start in range(0, len(lexical), CHUNK):
            part = slice(start, start + CHUNK)
            relevance = self._relevance(
                lexical[part],
                None if semantic is None else semantic[part],
                None if bonus is None else bonus[part],
            )
            found = np.flatnonzero(self._matching(relevance, semantic is not None))
            relevance = relevance.ravel()
            hits.append(found + start * self.size)
            values.append(relevance[found])
        rows, columns = np.divmod(np.concatenate(hits), self.size)
        return rows, columns, np.concatenate(values)

    def _matching(self, relevance: np.ndarray, semantic: bool) -> np.ndarray:
        """Which pairs match: relevance at or above the threshold, or, for a paper that
        stands out from the window for that interest (at least `standout_sigma` standard
        deviations above the interest's mean over all candidates), at or above the lower
        `standout_threshold`. A short, broad interest scores low against everything by
        meaning; the papers on its subject still rise clearly above the rest. With few
        candidates no paper can stand out that far (3 deviations need eleven). Words
        alone are too sparse for it: most papers score 0, so any shared word stands out;
        there the threshold alone decides, as it does for a paper still without an
        embedding (scored by words) among papers that have one."""
        p = self.params
        found = relevance >= p.threshold
        if semantic and p.standout_threshold < p.threshold:
            mean = relevance.mean(axis=1, keepdims=True)
            spread = relevance.std(axis=1, keepdims=True)
            # Strictly above: where every paper scores alike (one paper, say) the
            # spread is 0 and nothing stands out.
            standout = (relevance >= p.standout_threshold) & (
                relevance > mean + p.standout_sigma * spread
            )
            standout[:, self.without_vector] = False
            found |= standout
        return found

    def _relevance(
        self, lexical: np.ndarray, semantic: np.ndarray | None, bonus: np.ndarray | None
    ) -> np.ndarray:
        p = self.params
        # Lexical-only scores are rescaled so that one threshold serves both paths.
        scale = p.threshold / p.lexical_threshold
        if semantic is None:
            relevance = lexical * scale
            if bonus is not None:
                relevance += bonus * scale
            return relevance
        relevance = semantic * p.semantic_weight
        relevance += lexical * p.lexical_weight
        if bonus is not None:
            relevance += bonus
        if len(self.without_vector):
            # Papers without an embedding keep the lexical-only relevance.
            columns = self.without_vector
            words = lexical[:, columns] * scale
            if bonus is not None:
                words += bonus[:, columns] * scale
            relevance[:, columns] = words
        return relevance

    def _matches(
        self,
        interests: Sequence[Interest],
        rows: np.ndarray,
        columns: np.ndarray,
        relevance: np.ndarray,
        codes: np.ndarray,
        limit: int | None,
    ) -> list[list[Match]]:
        """The hits as each interest's matches, best first, cut to `limit`."""
        threshold = self.params.threshold
        above = np.clip((relevance - threshold) / max(1 - threshold, 1e-9), 0, 1)
        w = self.params.relevance_weight
        scores = w * above + (1 - w) * self.trending[columns]
        # Best first within each interest: by score, then paper id (how merging expects it).
        order = np.lexsort((self.ids[columns], -scores, rows))
        if limit is not None:
            ordered_rows = rows[order]
            rank = np.arange(len(order)) - np.searchsorted(ordered_rows, ordered_rows)
            order = order[rank < limit]
        rows = rows[order]
        reasons = _reasons(interests, rows, codes[order])
        matches = list(
            map(
                Match,
                self.ids[columns[order]].tolist(),
                scores[order].tolist(),
                relevance[order].tolist(),
                reasons,
            )
        )
        ends = np.cumsum(np.bincount(rows, minlength=len(interests))).tolist()
        return [matches[start:end] for start, end in pairwise([0, *ends])]


class _CategoryIndex:
    """The candidates' arXiv categories as a papers × categories 0/1 matrix."""

    def __init__(self, candidates: Sequence[Candidate]) -> None:
        names: dict[str, int] = {}
        for c in candidates:
            for category in c.categories:
                names.setdefault(category, len(names))
        self.names = names
        self.matrix = np.zeros((len(candidates), len(names)), dtype=np.float32)
        for row, c in enumerate(candidates):
            self.matrix[row, [names[category] for category in c.categories]] = 1.0

    def bonus(
        self,
        interests: Sequence[Interest],
        amount: float,
        buffer: _BufferFn,
    ) -> np.ndarray | None:
        """amount where an interest and a paper share a category, else 0 (None: nowhere)."""
        if not self.names or not any(i.categories for i in interests):
            return None
        wanted = np.zeros((len(interests), len(self.names)), dtype=np.float32)
        for row, interest in enumerate(interests):
            known = [self.names[c] for c in interest.categories if c in self.names]
            wanted[row, known] = 1.0
        shared = buffer("bonus", len(interests))
        np.matmul(wanted, self.matrix.T, out=shared)
        np.multiply(shared > 0, np.float32(amount), out=shared)
        return shared


class _BufferFn(Protocol):
    def __call__(self, name: str, rows: int) -> np.ndarray: ...


_WAYS = ("its words", "its meaning", "its arXiv category")


def _ways(
    lexical: np.ndarray,
    semantic: np.ndarray | None,
    bonus: np.ndarray | None,
    rows: np.ndarray,
    columns: np.ndarray,
) -> np.ndarray:
    """A bit per way a paper matched: 1 words, 2 meaning, 4 category."""
    code = (lexical[rows, columns] > 0.2).astype(np.int8)
    if semantic is not None:
        code |= (semantic[rows, columns] > 0.3).astype(np.int8) << 1
    if bonus is not None:
        code |= (bonus[rows, columns] > 0).astype(np.int8) << 2
    return np.asarray(code, dtype=np.int8)


def _reasons(interests: Sequence[Interest], rows: np.ndarray, codes: np.ndarray) -> list[str]:
    """ "Why you got this", built once per interest and way, not once per match."""
    keys = rows.astype(np.int64) * 8 + codes
    unique, inverse = np.unique(keys, return_inverse=True)
    texts = [_reason(interests[key >> 3].label, key & 7) for key in unique.tolist()]
    return [texts[n] for n in inverse.tolist()]


def _reason(label: str, code: int) -> str:
    ways = [way for bit, way in enumerate(_WAYS) if code >> bit & 1]
    how = " and ".join(ways) or "related words"
    return f"Matches your interest “{label}” by {how}"


def _paper_vectors(candidates: Sequence[Candidate]) -> tuple[np.ndarray | None, np.ndarray]:
    blobs = [c.embedding for c in candidates]
    known = [from_bytes(b) for b in blobs if b]
    if not known:
        return None, np.zeros(len(candidates), dtype=bool)
    dimension = known[0].shape[0]
    if len(known) == len(blobs) and all(v.shape[0] == dimension for v in known):
        joined = np.concatenate(known).reshape(len(blobs), dimension)
        return joined, np.ones(len(candidates), dtype=bool)
    vectors = np.zeros((len(candidates), dimension), dtype=np.float32)
    has = np.zeros(len(candidates), dtype=bool)
    for i, blob in enumerate(blobs):
        if blob and len(blob) == dimension * 4:
            vectors[i] = from_bytes(blob)
            has[i] = True
    return vectors, has


# Exposed for the trending documentation and tests.
__all__ = ["combine", "query_rows", "rank_hybrid", "semantic_text"]
