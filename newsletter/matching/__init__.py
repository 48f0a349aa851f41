"""Matching: which papers each interest should get, best first. Pure: no database.

The interface planning, `newsletter match` and the web use. Interests are matched per
unique interest (thousands of subscribers share one), never per subscriber.

Relevance is hybrid (see hybrid.py): BM25 coverage of the interest's words and phrases
over title + abstract, cosine similarity of sentence embeddings when the caller gives
interest vectors (papers carry theirs), and a bonus for a shared arXiv category. A
calibrated threshold decides what matches, so an off-topic interest gets nothing. The
order of the matches mixes relevance with trending (see trending.py).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator, Sequence

import numpy as np

from newsletter.matching.hybrid import rank_hybrid, semantic_text
from newsletter.matching.types import Candidate, Interest, Match, MatchParams

__all__ = [
    "Candidate",
    "Interest",
    "Match",
    "MatchParams",
    "collection_paused",
    "rank",
    "semantic_text",
]


def rank(
    interests: Sequence[Interest],
    candidates: Sequence[Candidate],
    *,
    interest_vectors: np.ndarray | None = None,
    params: MatchParams | None = None,
    limit: int | None = None,
) -> dict[str, list[Match]]:
    """Every interest's matching candidates (distinct paper ids), best first.

    interest_vectors: one normalized embedding row per interest (same model as the
    candidates' embeddings); None ranks by words and categories alone.
    limit: keep each interest's best `limit` matches (a subscriber's top k are always
    among the union of their interests' top k).
    """
    with collection_paused():
        return rank_hybrid(interests, candidates, interest_vectors, params or MatchParams(), limit)


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """No cyclic garbage collection for the duration.

    Ranking and merging allocate hundreds of thousands of small objects (terms, matches,
    lists) that form no reference cycles; each burst would set off collections that walk
    the caller's whole heap (a planner holds every subscriber) and free nothing.
    Collection resumes afterwards.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
