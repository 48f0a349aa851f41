"""Service between the store and the pure matcher: interests from subscribers' choices,
candidates from stored papers, and the ranked picks planning and `match` use.

Paper embeddings are computed once per paper and model and kept in papers.embedding
(float32 bytes) with papers.embedding_model; they are recomputed only when missing
(the store clears them when a title or abstract changes) or when the configured model
changes. Interests (typed texts and topics) are embedded once per unique text and model,
kept in the interest_embeddings table and cached in the process. On PostgreSQL new
interest vectors are committed in their own transaction, so a plan that is rolled back
(dry run) does not lose them; SQLite has one writer and the planner holds it, so there
they are written in the caller's transaction.

A typed one-word interest that names a configured topic is matched as that topic
(see newsletter/matching/expand.py): "healthcare" gets the radiology papers.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from newsletter import db
from newsletter.config import MatchingConfig, Settings
from newsletter.errors import InvalidInput, MatcherUnavailable
from newsletter.matching import Candidate, Interest, Match, MatchParams, rank, semantic_text
from newsletter.matching.embedder import (
    Embedder,
    EmbedderUnavailable,
    from_bytes,
    load_embedder,
    paper_text,
    to_bytes,
)
from newsletter.matching.expand import expand, topic
from newsletter.models import Paper
from newsletter.store import embeddings as store_embeddings
from newsletter.store import papers as store_papers

log = logging.getLogger(__name__)
_INTEREST_CACHE_SIZE = 50_000  # ~75 MB of 384-float vectors at most


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
            _unavailable(settings.matching, exc, quiet=False)
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
        relevance_weight=config.relevance_weight,
        half_life_days=config.half_life_days,
        topic_similarity=config.topic_similarity,
    )


def configured_embedder(config: MatchingConfig, *, quiet: bool = False) -> Embedder | None:
    """The configured model, or None where it cannot be had.

    Without the model the fallback is logged as one line, unless `quiet`: embedding
    ahead of a plan is quiet, the ranking that follows says it once for the run.
    """
    if config.semantic == "off":
        return None
    try:
        return load_embedder(config.model)
    except EmbedderUnavailable as exc:
        _unavailable(config, exc, quiet)
        return None


def _unavailable(config: MatchingConfig, exc: EmbedderUnavailable, quiet: bool) -> None:
    """No model after all: an error when it is required, else words only (said once)."""
    if config.semantic == "on":
        raise MatcherUnavailable(f"matching.semantic is on, but {exc}") from None
    if not quiet:
        log.warning("Semantic matching is off: %s; matching papers by their words only.", exc)


def ensure_embeddings(session: Session, papers: Sequence[Paper], embedder: Embedder) -> int:
    """Embed the papers lacking an embedding from this model; returns how many were."""
    stale = [p for p in papers if p.embedding is None or p.embedding_model != embedder.name]
    if not stale:
        return 0
    vectors = embedder.embed([paper_text(p.title, p.abstract) for p in stale])
    for paper, vector in zip(stale, vectors, strict=True):
        paper.embedding = to_bytes(vector)
        paper.embedding_model = embedder.name
    session.flush()
    return len(stale)


_interest_vectors: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()


def embed_interests(
    embedder: Embedder, interests: Sequence[Interest], session: Session | None = None
) -> np.ndarray:
    """One row per interest; each distinct text is embedded once per model, ever
    (with a session: kept in the store), and cached in the process."""
    texts = [semantic_text(i) for i in interests]
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    return embed_texts(session, embedder, texts)


def store_paper_embeddings(
    sessions: sessionmaker[Session], settings: Settings, texts: Mapping[int, str]
) -> int:
    """Embed these papers (id → title and abstract) and store the vectors; returns how many.

    The model runs outside any transaction and the write is short: on SQLite a long
    write transaction would hold the only lock that senders need to mark mail sent.
    """
    embedder = configured_embedder(settings.matching, quiet=True) if texts else None
    if embedder is None:
        return 0
    try:
        vectors = embedder.embed(list(texts.values()))
    except EmbedderUnavailable as exc:
        _unavailable(settings.matching, exc, quiet=True)
        return 0
    blobs = {paper_id: to_bytes(v) for paper_id, v in zip(texts, vectors, strict=True)}
    with db.transaction(sessions, immediate=True) as session:
        store_papers.set_embeddings(session, embedder.name, blobs)
    return len(blobs)


def store_interest_embeddings(
    sessions: sessionmaker[Session], settings: Settings, interests: Sequence[Interest]
) -> int:
    """Embed the interests not stored yet for this model, ahead of planning (which a dry
    run rolls back); the model runs outside any transaction. Returns how many."""
    embedder = configured_embedder(settings.matching, quiet=True) if interests else None
    if embedder is None:
        return 0
    texts = list(dict.fromkeys(semantic_text(i) for i in interests))
    with db.transaction(sessions) as session:
        known = store_embeddings.load_vectors(session, embedder.name, texts)
    missing = [t for t in texts if t not in known]
    if not missing:
        return 0
    try:
        vectors = embedder.embed(missing)
    except EmbedderUnavailable as exc:
        _unavailable(settings.matching, exc, quiet=True)
        return 0
    with db.transaction(sessions, immediate=True) as session:
        store_embeddings.save_vectors(
            session, embedder.name, {t: to_bytes(v) for t, v in zip(missing, vectors, strict=True)}
        )
    return len(missing)


def embed_texts(session: Session | None, embedder: Embedder, texts: Sequence[str]) -> np.ndarray:
    """One row per text: from the process cache, else the store, else the model."""
    name = embedder.name
    missing = list(dict.fromkeys(t for t in texts if (name, t) not in _interest_vectors))
    if missing and session is not None:
        stored = store_embeddings.load_vectors(session, name, missing)
        for text, blob in stored.items():
            _interest_vectors[(name, text)] = from_bytes(blob)
        missing = [t for t in missing if t not in stored]
    if missing:
        fresh = embedder.embed(missing)
        for text, vector in zip(missing, fresh, strict=True):
            _interest_vectors[(name, text)] = vector
        if session is not None:
            _save(session, name, {t: to_bytes(v) for t, v in zip(missing, fresh, strict=True)})
    rows = []
    for text in texts:
        key = (name, text)
        _interest_vectors.move_to_end(key)
        rows.append(_interest_vectors[key])
    while len(_interest_vectors) > _INTEREST_CACHE_SIZE:
        _interest_vectors.popitem(last=False)
    return np.vstack(rows).astype(np.float32, copy=False)


def _save(session: Session, model: str, vectors: dict[str, bytes]) -> None:
    bind = session.get_bind()
    if bind.dialect.name == "sqlite":
        # One writer: the planner may hold the lock, so a second transaction would wait.
        store_embeddings.save_vectors(session, model, vectors)
        return
    engine = bind if isinstance(bind, Engine) else bind.engine
    with db.transaction(db.session_factory(engine)) as own:  # survives a rolled-back plan
        store_embeddings.save_vectors(own, model, vectors)


def forget_cached_interests() -> None:
    """Empty the process cache (tests and benchmarks measure the store path with it)."""
    _interest_vectors.clear()


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


def picks_for_queries(
    session: Session,
    settings: Settings,
    queries: Sequence[str],
    days: int | None = None,
    now: datetime | None = None,
) -> dict[str, list[QueryPick]]:
    """Each query's digest picks, by the same ranking planning uses, best first."""
    interests = [interest_for_query(settings, q) for q in queries]
    if days is None:
        papers = store_papers.all_papers(session)
    else:
        end = now or datetime.now(UTC)
        papers = store_papers.papers_listed_between(session, end - timedelta(days=days), end)
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
