"""Service between the store and the pure matcher: interests from subscribers' choices,
candidates from stored papers, and the ranked picks planning and `match` use.

A typed one-word interest that names a configured topic is matched as that topic
(see newsletter/matching/expand.py): "healthcare" gets the radiology papers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy.orm import Session

from newsletter.config import MatchingConfig, Settings
from newsletter.errors import InvalidInput
from newsletter.matching import Candidate, Interest, Match, MatchParams, rank
from newsletter.matching.embedder import (
    Embedder,
    EmbedderUnavailable,
    paper_text,
)
from newsletter.matching.expand import expand, topic
from newsletter.planning.embeddings import (
    Embedded,
    EmbedProgress,
    configured_embedder,
    embed_interests,
    embed_texts,
    ensure_embeddings,
    report_unavailable,
    store_new_embeddings,
    stored_model_name,
)
from newsletter.runtime import Runtime
from newsletter.store import db
from newsletter.store import papers as store_papers
from newsletter.store.models import Paper


class _Configured:
    """Marker: use the embedder the settings name."""


CONFIGURED = _Configured()


def topic_interest(settings: Settings, slug: str) -> Interest | None:
    found = settings.topic(slug)
    if found is None:
        return None
    return topic(slug, found.name, found.description, found.keywords, found.categories)


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
    session: Session,
    settings: Settings,
    interests: Sequence[Interest],
    papers: Sequence[Paper],
    *,
    embedder: Embedder | _Configured | None = CONFIGURED,
) -> dict[str, list[Match]]:
    """Each unique interest's matching papers, best first.

    Embeds (and stores, in the caller's transaction) the papers that have no embedding
    from the current model. `embedder` overrides the configured model (None: words only).
    Typed one-word interests naming a configured topic are matched as that topic.
    """
    unique = list({i.key: i for i in interests}.values())
    model = (
        configured_embedder(settings.matching) if isinstance(embedder, _Configured) else embedder
    )
    found = params(settings.matching)
    topics = [t for t in (topic_interest(settings, c.slug) for c in settings.topics) if t]
    vectors = None
    if model is not None and papers:
        try:
            unique, vectors = _semantic(session, model, unique, topics, papers, found)
        except EmbedderUnavailable as exc:  # the model failed to load on first use
            report_unavailable(settings.matching, exc, quiet=False)
            model = None
    if vectors is None:
        unique = expand(unique, topics, None, found.topic_similarity)
    candidates = [candidate(p) for p in papers]
    return rank(unique, candidates, interest_vectors=vectors, params=found)


def _semantic(
    session: Session,
    model: Embedder,
    interests: list[Interest],
    topics: list[Interest],
    papers: Sequence[Paper],
    found: MatchParams,
) -> tuple[list[Interest], np.ndarray]:
    ensure_embeddings(session, papers, model)

    def embed(texts: Sequence[str]) -> np.ndarray:
        return embed_texts(session, model, texts)

    expanded = expand(interests, topics, embed, found.topic_similarity)
    return expanded, embed_interests(model, expanded, session)


def params(config: MatchingConfig) -> MatchParams:
    return MatchParams(
        semantic_weight=config.semantic_weight,
        lexical_weight=config.lexical_weight,
        category_bonus=config.category_bonus,
        threshold=config.threshold,
        lexical_threshold=config.lexical_threshold,
        standout_threshold=config.standout_threshold,
        standout_sigma=config.standout_sigma,
        relevance_weight=config.relevance_weight,
        half_life_days=config.half_life_days,
        topic_similarity=config.topic_similarity,
        example_threshold=config.example_threshold,
        example_lexical_threshold=config.example_lexical_threshold,
        example_alone_threshold=config.example_alone_threshold,
        example_alone_lexical_threshold=config.example_alone_lexical_threshold,
        fewer_threshold=config.fewer_threshold,
    )


@dataclass(frozen=True)
class QueryPick:
    """One paper `newsletter match` shows: what a subscriber with that interest gets.

    Both numbers are on a 0–1 scale: `score` orders the digest (relevance mixed with
    trending); `relevance` is at least matching.threshold and shown capped at 1 (a
    topic's category bonus can lift the raw sum above it, which changes no order).
    """

    external_id: str
    title: str
    score: float
    relevance: float
    reason: str


def interest_for_query(settings: Settings, query: str) -> Interest:
    """A config topic's slug means that topic; anything else is a typed interest."""
    text = query.strip()
    if not text:
        raise InvalidInput("an empty QUERY matches nothing; type an interest or a topic slug")
    return topic_interest(settings, text) or text_interest(text)


def embed_for_queries(
    context: Runtime,
    queries: Sequence[str],
    days: int | None = None,
    now: datetime | None = None,
    progress: EmbedProgress | None = None,
) -> Embedded:
    """Embed and store, chunk by chunk, what `picks_for_queries` would otherwise embed
    in one go inside its transaction: the papers and the queries lacking a vector."""
    settings = context.settings
    interests = [interest_for_query(settings, q) for q in queries]
    if settings.matching.semantic == "off":
        return Embedded(0, 0)
    model = stored_model_name(settings.matching)
    with db.transaction(context.sessions) as session:
        stale = {
            p.id: paper_text(p.title, p.abstract)
            for p in _query_papers(session, days, now)
            if p.embedding is None or p.embedding_model != model
        }
    return store_new_embeddings(context, settings, stale, interests, progress)


def _query_papers(session: Session, days: int | None, now: datetime | None) -> list[Paper]:
    if days is None:
        return list(store_papers.all_papers(session))
    end = now or datetime.now(UTC)
    return list(store_papers.papers_listed_between(session, end - timedelta(days=days), end))


def picks_for_queries(
    session: Session,
    settings: Settings,
    queries: Sequence[str],
    days: int | None = None,
    now: datetime | None = None,
) -> dict[str, list[QueryPick]]:
    """Each query's digest picks, by the same ranking planning uses, best first."""
    interests = [interest_for_query(settings, q) for q in queries]
    papers = _query_papers(session, days, now)
    ranked = rank_papers(session, settings, interests, papers) if papers else {}
    by_id = {p.id: p for p in papers}
    limit = settings.digest.max_papers
    return {
        query: [
            QueryPick(
                by_id[m.paper_id].external_id,
                by_id[m.paper_id].title,
                m.score,
                min(m.relevance, 1.0),
                m.reason,
            )
            for m in ranked.get(interest.key, [])[:limit]
        ]
        for query, interest in zip(queries, interests, strict=True)
    }


def match_queries(
    context: Runtime,
    queries: Sequence[str],
    days: int | None = None,
    progress: EmbedProgress | None = None,
) -> dict[str, list[QueryPick]]:
    """`newsletter match`: embed what is missing (chunk by chunk, `progress` told), then
    rank each query's picks in one read transaction."""
    embed_for_queries(context, queries, days, progress=progress)
    with db.transaction(context.sessions) as session:
        return picks_for_queries(session, context.settings, queries, days)
