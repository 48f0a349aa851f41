"""The hybrid matcher: lexical coverage, semantic similarity and arXiv categories.

All interests are scored against all papers as matrices, a block of interests at a
time, so tens of thousands of unique interests cost a few matrix products rather than
a Python loop over papers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from newsletter.matching.embedder import from_bytes
from newsletter.matching.lexical import LexicalIndex
from newsletter.matching.text import terms
from newsletter.matching.trending import combine, trending_scores
from newsletter.matching.types import Candidate, Interest, Match, MatchParams

BLOCK = 2048  # interests scored at once: bounds memory to BLOCK × papers floats


def semantic_text(interest: Interest) -> str:
    """What is embedded for an interest: its text, plus a topic's keywords."""
    if not interest.keywords:
        return interest.text
    return f"{interest.text}. {', '.join(interest.keywords)}"


def query_rows(interest: Interest) -> list[list[str]]:
    """A free-text interest is one query; a topic matches by its name or any keyword."""
    rows = [terms(interest.label if interest.keywords else interest.text)]
    rows.extend(terms(keyword) for keyword in interest.keywords)
    return [row for row in rows if row] or [[]]


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
    ranked: dict[str, list[Match]] = {}
    for start in range(0, len(interests), BLOCK):
        block = interests[start : start + BLOCK]
        vectors = None if interest_vectors is None else interest_vectors[start : start + BLOCK]
        ranked.update(papers.rank_block(block, vectors, limit))
    return ranked


class _Papers:
    """Everything about the candidates that does not depend on the interest."""

    def __init__(self, candidates: Sequence[Candidate], params: MatchParams, semantic: bool):
        self.candidates = candidates
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
        self.has_vector: np.ndarray | None = None
        if semantic:
            self.vectors, self.has_vector = _paper_vectors(candidates)
        self.categories = [set(c.categories) for c in candidates]

    def rank_block(
        self, interests: Sequence[Interest], vectors: np.ndarray | None, limit: int | None
    ) -> dict[str, list[Match]]:
        lexical = self._lexical(interests)
        semantic = None
        if vectors is not None and self.vectors is not None:
            semantic = np.asarray(vectors, dtype=np.float32) @ self.vectors.T
        bonus = self._category_bonus(interests)
        relevance = self._relevance(lexical, semantic, bonus)
        return {
            interest.key: self._matches(interest, row, lexical[i], semantic, i, bonus, limit)
            for i, (interest, row) in enumerate(zip(interests, relevance, strict=True))
        }

    def _lexical(self, interests: Sequence[Interest]) -> np.ndarray:
        rows: list[list[str]] = []
        starts: list[int] = []
        for interest in interests:
            starts.append(len(rows))
            rows.extend(query_rows(interest))
        scores = self.index.scores(self.index.query_matrix(rows))
        if len(rows) == len(interests):
            return scores
        # A topic matches by its best keyword: the max over its rows.
        return np.maximum.reduceat(scores, np.array(starts), axis=0)

    def _category_bonus(self, interests: Sequence[Interest]) -> np.ndarray | None:
        if not any(i.categories for i in interests) or not any(self.categories):
            return None
        bonus = np.zeros((len(interests), len(self.candidates)), dtype=np.float32)
        for row, interest in enumerate(interests):
            wanted = set(interest.categories)
            for column, categories in enumerate(self.categories):
                if wanted & categories:
                    bonus[row, column] = self.params.category_bonus
        return bonus

    def _relevance(
        self, lexical: np.ndarray, semantic: np.ndarray | None, bonus: np.ndarray | None
    ) -> np.ndarray:
        p = self.params
        # Lexical-only scores are rescaled so that one threshold serves both paths.
        relevance = lexical * (p.threshold / p.lexical_threshold)
        if bonus is not None:
            relevance = relevance + bonus * (p.threshold / p.lexical_threshold)
        if semantic is not None and self.has_vector is not None:
            hybrid = p.semantic_weight * semantic + p.lexical_weight * lexical
            if bonus is not None:
                hybrid = hybrid + bonus
            relevance = np.where(self.has_vector[np.newaxis, :], hybrid, relevance)
        return relevance

    def _matches(
        self,
        interest: Interest,
        relevance: np.ndarray,
        lexical: np.ndarray,
        semantic: np.ndarray | None,
        row: int,
        bonus: np.ndarray | None,
        limit: int | None,
    ) -> list[Match]:
        threshold = self.params.threshold
        hits = np.flatnonzero(relevance >= threshold)
        if not len(hits):
            return []
        above = np.clip((relevance[hits] - threshold) / max(1 - threshold, 1e-9), 0, 1)
        w = self.params.relevance_weight
        scores = w * above + (1 - w) * self.trending[hits]
        order = np.lexsort((self.ids[hits], -scores))
        if limit is not None:
            order = order[:limit]
        columns = hits[order]
        codes = _ways(lexical, semantic, row, bonus, columns)
        reasons = _reasons(interest, codes)
        return [
            Match(int(pid), float(score), float(rel), reasons[code])
            for pid, score, rel, code in zip(
                self.ids[columns].tolist(),
                scores[order].tolist(),
                relevance[columns].tolist(),
                codes.tolist(),
                strict=True,
            )
        ]


_WAYS = ("its words", "its meaning", "its arXiv category")


def _ways(
    lexical: np.ndarray,
    semantic: np.ndarray | None,
    row: int,
    bonus: np.ndarray | None,
    columns: np.ndarray,
) -> np.ndarray:
    """A bit per way a paper matched: 1 words, 2 meaning, 4 category."""
    code = (lexical[columns] > 0.2).astype(np.int8)
    if semantic is not None:
        code |= (semantic[row, columns] > 0.3).astype(np.int8) << 1
    if bonus is not None:
        code |= (bonus[row, columns] > 0).astype(np.int8) << 2
    return np.asarray(code, dtype=np.int8)


def _reasons(interest: Interest, codes: np.ndarray) -> dict[int, str]:
    """ "Why you got this", once per interest and way, not once per match."""
    reasons = {}
    for code in set(codes.tolist()):
        ways = [way for bit, way in enumerate(_WAYS) if code >> bit & 1]
        how = " and ".join(ways) or "related words"
        reasons[code] = f"Matches your interest “{interest.label}” by {how}"
    return reasons


def _paper_vectors(candidates: Sequence[Candidate]) -> tuple[np.ndarray | None, np.ndarray]:
    blobs = [c.embedding for c in candidates]
    known = [from_bytes(b) for b in blobs if b]
    if not known:
        return None, np.zeros(len(candidates), dtype=bool)
    dimension = known[0].shape[0]
    vectors = np.zeros((len(candidates), dimension), dtype=np.float32)
    has = np.zeros(len(candidates), dtype=bool)
    for i, blob in enumerate(blobs):
        if blob and len(blob) == dimension * 4:
            vectors[i] = from_bytes(blob)
            has[i] = True
    return vectors, has


# Exposed for the trending documentation and tests.
__all__ = ["combine", "query_rows", "rank_hybrid", "semantic_text"]
