"""Service between the store and the pure matcher: interests from subscribers' choices,
candidates from stored papers, and the ranked picks planning and `match` use.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.matching import Candidate, Interest, Match, rank
from newsletter.models import Paper


def topic_interest(settings: Settings, slug: str) -> Interest | None:
    topic = settings.topic(slug)
    if topic is None:
        return None
    text = ". ".join(part for part in (topic.name, topic.description) if part)
    return Interest(f"topic:{slug}", topic.name, text, topic.keywords, topic.categories)


def text_interest(text: str) -> Interest:
    return Interest(f"text:{text.lower()}", text, text)


def interests_for(
    settings: Settings, topics: Iterable[str], texts: Iterable[str]
) -> list[Interest]:
    """A subscriber's interests: config topics they picked, then what they typed."""
    found = [topic_interest(settings, slug) for slug in topics]
    return [i for i in found if i is not None] + [text_interest(t) for t in texts]


def candidate(paper: Paper) -> Candidate:
    return Candidate(
        paper_id=paper.id,
        title=paper.title,
        abstract=paper.abstract,
        categories=tuple(paper.categories or ()),
        keywords=tuple(paper.keywords or ()),
        upvotes=paper.upvotes,
        comments=paper.comments,
        listed_at=paper.listed_at,
        embedding=paper.embedding,
    )


def rank_papers(
    session: Session, settings: Settings, interests: Sequence[Interest], papers: Sequence[Paper]
) -> dict[str, list[Match]]:
    """Each unique interest's matching papers, best first."""
    unique = list({i.key: i for i in interests}.values())
    return rank(unique, [candidate(p) for p in papers])
