"""Matching: which papers each interest should get, best first. Pure: no database.

The interface planning, `newsletter match` and the web use. Interests are matched per
unique interest (thousands of subscribers share one), never per subscriber.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Interest:
    key: str  # "topic:llms" or "text:diffusion models for video"
    label: str  # what "why you got this" shows: the topic name or the typed text
    text: str  # the query: name, description, or the free text
    keywords: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class Candidate:
    paper_id: int
    title: str
    abstract: str
    categories: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    upvotes: int | None = None
    comments: int | None = None
    listed_at: datetime | None = None
    embedding: bytes | None = None


@dataclass(frozen=True)
class Match:
    paper_id: int
    score: float  # the order of a digest: relevance combined with trending
    relevance: float


def rank(interests: Sequence[Interest], candidates: Sequence[Candidate]) -> dict[str, list[Match]]:
    """Every interest's matching candidates, best first (keyword baseline)."""
    return {interest.key: _rank_one(interest, candidates) for interest in interests}


def _rank_one(interest: Interest, candidates: Sequence[Candidate]) -> list[Match]:
    terms = [t.lower() for t in (*interest.keywords, interest.label) if t.strip()]
    matches = []
    for candidate in candidates:
        text = f"{candidate.title} {candidate.abstract}".lower()
        hits = sum(1 for term in terms if re.search(rf"\b{re.escape(term)}\b", text))
        if hits or set(interest.categories) & set(candidate.categories):
            relevance = float(hits)
            matches.append(
                Match(candidate.paper_id, relevance + (candidate.upvotes or 0) / 1000, relevance)
            )
    return sorted(matches, key=lambda m: (-m.score, m.paper_id))
