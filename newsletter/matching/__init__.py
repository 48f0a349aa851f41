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
import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence

import numpy as np

from newsletter.matching.hybrid import rank_hybrid, semantic_text
from newsletter.matching.types import Candidate, Interest, Match, MatchParams

__all__ = [
    "Candidate",
    "Interest",
    "Match",
    "MatchParams",
    "collection_paused",
    "picks",
    "picks_for_all",
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


def picks(ranked: Mapping[str, list[Match]], keys: Iterable[str], limit: int) -> list[Match]:
    """One subscriber's digest from their interests' ranked matches: each paper once,
    under the interest where it scored best, best first.

    Only each list's first `limit` matches can be picked (a paper further down one list
    has `limit` better papers before it in that list alone), so a subscriber costs a
    sort of a few dozen matches however many papers their interests match. Ties keep
    the order of `keys`, as a merge of the lists would. Paper ids are distinct within a
    list, as `rank` returns them, so a single matching interest needs no merge at all.
    """
    limit = max(limit, 1)  # as before: the first match is taken before the count is checked
    lists = [found for key in keys if (found := ranked.get(key))]
    if len(lists) <= 1:
        return list(lists[0][:limit]) if lists else []
    merged = sorted(itertools.chain.from_iterable(m[:limit] for m in lists), key=_best_first)
    chosen: list[Match] = []
    taken: set[int] = set()
    for match in merged:
        if match.paper_id not in taken:
            taken.add(match.paper_id)
            chosen.append(match)
            if len(chosen) >= limit:
                break
    return chosen


def picks_for_all(
    ranked: Mapping[str, list[Match]], subscribers: Iterable[Sequence[str]], limit: int
) -> list[list[Match]]:
    """`picks` for each subscriber's interest keys, merged once per distinct run of
    matching interests: thousands of subscribers share "LLMs" and nothing else that
    matched this week. Subscribers with the same picks share one list: do not mutate."""
    merged: dict[tuple[str, ...], list[Match]] = {}
    out: list[list[Match]] = []
    with collection_paused():
        for keys in subscribers:
            signature = tuple([key for key in keys if ranked.get(key)])
            found = merged.get(signature)
            if found is None:
                found = merged[signature] = picks(ranked, signature, limit)
            out.append(found)
    return out


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """No cyclic garbage collection for the duration.

    Ranking and merging allocate hundreds of thousands of small objects (terms, matches,
    lists) that form no reference cycles; each burst would set off collections that walk
    the caller's whole heap (a planner holds every subscriber), a tenth or more of the
    time of a large edition, and free nothing. Collection resumes afterwards.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _best_first(match: Match) -> tuple[float, int]:
    return -match.score, match.paper_id
