"""Trending: how much the community cares about a paper now, in [0, 1].

    engagement = log(1 + upvotes + 2·comments) / log(1 + the window's highest such count)
    freshness  = 0.5 ** (age_days / half_life_days)   (age from the newest paper listed)
    trending   = freshness · (0.25 + 0.75 · engagement)

A comment counts as two upvotes (it costs more effort); the log keeps one viral paper
from flattening the rest. Papers without counts (arXiv) have engagement 0 and so rank
among themselves by recency. Age is measured from the newest paper in the candidates,
not the wall clock, so a digest planned late ranks the same.

A digest's order combines it with relevance (see `combine`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

COMMENT_WEIGHT = 2.0
FLOOR = 0.25  # the share of the score a paper with no engagement still gets


def engagement(upvotes: int | None, comments: int | None) -> float:
    return math.log1p(max(upvotes or 0, 0) + COMMENT_WEIGHT * max(comments or 0, 0))


def trending_scores(
    counts: Sequence[tuple[int | None, int | None]],
    listed: Sequence[datetime | None],
    half_life_days: float,
) -> list[float]:
    raw = [engagement(upvotes, comments) for upvotes, comments in counts]
    top = max(raw, default=0.0)
    newest = max((t for t in listed if t is not None), default=None)
    scores = []
    for value, when in zip(raw, listed, strict=True):
        age = (newest - when).total_seconds() / 86400 if newest and when else 0.0
        freshness = 0.5 ** (max(age, 0.0) / half_life_days)
        share = value / top if top > 0 else 0.0
        scores.append(freshness * (FLOOR + (1 - FLOOR) * share))
    return scores


def most_trending(
    counts: Sequence[tuple[int | None, int | None]],
    listed: Sequence[datetime | None],
    half_life_days: float,
) -> list[int]:
    """Indexes of the items, most trending first; ties keep the given order.

    The one definition of "trending" for everything that is not personal: the home
    page and an edition's general selection order papers exactly as digests weigh them.
    """
    scores = trending_scores(counts, listed, half_life_days)
    return sorted(range(len(scores)), key=lambda i: -scores[i])


def combine(relevance: float, threshold: float, trending: float, relevance_weight: float) -> float:
    """A digest's order: relevance above the threshold, rescaled to [0, 1], mixed with trending.

    score = w · (relevance − threshold) / (1 − threshold) + (1 − w) · trending
    With w = 0.4 trending leads (the digest is a trending digest), while a paper squarely
    on the interest still beats a barely relevant one of similar popularity.
    """
    span = max(1.0 - threshold, 1e-9)
    above = min(max((relevance - threshold) / span, 0.0), 1.0)
    return relevance_weight * above + (1 - relevance_weight) * trending
