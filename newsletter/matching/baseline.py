"""The plain keyword baseline the README reports quality next to.

A paper matches when its title or abstract contains the interest's text (or, for a
topic, its name or any keyword) as whole words, case-insensitively; it is ordered by
how many of those terms it contains, then by upvotes. No stemming, no phrases beyond
the literal string, no meaning: "healthcare" misses a radiology paper.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from newsletter.matching.types import Candidate, Interest, Match


def rank(interests: Sequence[Interest], candidates: Sequence[Candidate]) -> dict[str, list[Match]]:
    return {interest.key: _rank_one(interest, candidates) for interest in interests}


def _rank_one(interest: Interest, candidates: Sequence[Candidate]) -> list[Match]:
    terms = [t.lower() for t in (*interest.keywords, interest.label) if t.strip()]
    patterns = [re.compile(rf"\b{re.escape(term)}\b") for term in terms]
    matches = []
    for candidate in candidates:
        text = f"{candidate.title} {candidate.abstract}".lower()
        hits = sum(1 for pattern in patterns if pattern.search(text))
        if hits or set(interest.categories) & set(candidate.categories):
            relevance = float(hits)
            score = relevance + (candidate.upvotes or 0) / 1000
            matches.append(Match(candidate.paper_id, score, relevance, "keyword"))
    return sorted(matches, key=lambda m: (-m.score, m.paper_id))
