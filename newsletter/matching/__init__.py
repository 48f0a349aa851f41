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

import heapq
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from newsletter.matching.hybrid import rank_hybrid, semantic_text
from newsletter.matching.types import Candidate, Interest, Match, MatchParams

__all__ = [
    "Candidate",
    "Interest",
    "Match",
    "MatchParams",
    "picks",
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
    """Every interest's matching candidates, best first.

    interest_vectors: one normalized embedding row per interest (same model as the
    candidates' embeddings); None ranks by words and categories alone.
    limit: keep each interest's best `limit` matches (a subscriber's top k are always
    among the union of their interests' top k).
    """
    return rank_hybrid(interests, candidates, interest_vectors, params or MatchParams(), limit)


def picks(ranked: Mapping[str, list[Match]], keys: Iterable[str], limit: int) -> list[Match]:
    """One subscriber's digest from their interests' ranked matches: each paper once,
    under the interest where it scored best, best first.

    The lists are merged lazily (each is already best first), so a subscriber costs
    about `limit` steps however many papers their topics match.
    """
    streams = [((-m.score, m.paper_id, m) for m in ranked.get(key, ())) for key in keys]
    chosen: list[Match] = []
    taken: set[int] = set()
    for _, paper_id, match in heapq.merge(*streams, key=lambda item: item[:2]):
        if paper_id not in taken:
            taken.add(paper_id)
            chosen.append(match)
            if len(chosen) >= limit:
                break
    return chosen
