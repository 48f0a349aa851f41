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

Ahead of planning and `match` (store_new_embeddings), what is new is embedded chunk by
chunk outside any transaction, each chunk stored in a short transaction of its own, and
a progress callback is told (done, total): a killed run keeps the chunks it stored.

A typed one-word interest that names a configured topic is matched as that topic
(see newsletter/matching/expand.py): "healthcare" gets the radiology papers.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

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
K = TypeVar("K", int, str)
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


def stored_model_name(config: MatchingConfig) -> str:
    """What the configured model's vectors are stored under (its backend included), without
    loading it; the configured name where the model cannot be had."""
    try:
        return load_embedder(config.model).name
    except EmbedderUnavailable:
        return config.model


EmbedProgress = Callable[[int, int], None]
"""Told (texts embedded so far, texts to embed) before the first chunk and after each."""

EMBED_CHUNK = 64  # texts per model call and per write: a killed run loses at most this many


@dataclass(frozen=True)
class Embedded:
    papers: int
    interests: int


def store_new_embeddings(
    sessions: sessionmaker[Session],
    settings: Settings,
    papers: Mapping[int, str],
    interests: Sequence[Interest],
    progress: EmbedProgress | None = None,
) -> Embedded:
    """Embed these papers (id → title and abstract) and the interests not stored yet for
    the configured model, and store the vectors; `progress` is told only when there is
    something to embed."""
    # Quiet: without the model, the ranking that follows says so once for the run.
    embedder = configured_embedder(settings.matching, quiet=True) if papers or interests else None
    if embedder is None:
        return Embedded(0, 0)
    try:
        return store_vectors(sessions, embedder, papers, interests, progress)
    except EmbedderUnavailable as exc:  # the model failed to load on first use
        _unavailable(settings.matching, exc, quiet=True)
        return Embedded(0, 0)


def store_vectors(
    sessions: sessionmaker[Session],
    embedder: Embedder,
    papers: Mapping[int, str],
    interests: Sequence[Interest],
    progress: EmbedProgress | None = None,
    chunk: int = EMBED_CHUNK,
) -> Embedded:
    """Embed chunk by chunk, each chunk stored in a short transaction of its own.

    The model runs outside any transaction: on SQLite a long write transaction would
    hold the only lock that senders need to mark mail sent. A run that is killed or
    fails keeps the chunks already stored, and the next run embeds only the rest.
    """
    texts = _missing_interest_texts(sessions, embedder.name, interests)
    total = len(papers) + len(texts)
    done = 0

    def tick(count: int) -> None:
        nonlocal done
        done += count
        if progress is not None:
            progress(done, total)

    if total:
        tick(0)
    _embed_chunks(
        sessions, embedder, list(papers.items()), store_papers.set_embeddings, chunk, tick
    )
    pairs = [(t, t) for t in texts]
    _embed_chunks(sessions, embedder, pairs, store_embeddings.save_vectors, chunk, tick)
    return Embedded(len(papers), len(texts))


def _embed_chunks(
    sessions: sessionmaker[Session],
    embedder: Embedder,
    items: Sequence[tuple[K, str]],
    save: Callable[[Session, str, Mapping[K, bytes]], None],
    chunk: int,
    tick: Callable[[int], None],
) -> None:
    """Embed (key, text) pairs a chunk at a time; each chunk's vectors are saved by key."""
    for start in range(0, len(items), chunk):
        part = items[start : start + chunk]
        vectors = embedder.embed([text for _, text in part])
        blobs = {key: to_bytes(v) for (key, _), v in zip(part, vectors, strict=True)}
        with db.transaction(sessions, immediate=True) as session:
            save(session, embedder.name, blobs)
        tick(len(part))


def _missing_interest_texts(
    sessions: sessionmaker[Session], model: str, interests: Sequence[Interest]
) -> list[str]:
    texts = list(dict.fromkeys(semantic_text(i) for i in interests))
    if not texts:
        return []
    with db.transaction(sessions) as session:
        known = store_embeddings.load_vectors(session, model, texts)
    return [t for t in texts if t not in known]


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


def embed_for_queries(
    sessions: sessionmaker[Session],
    settings: Settings,
    queries: Sequence[str],
    days: int | None = None,
    now: datetime | None = None,
    progress: EmbedProgress | None = None,
) -> Embedded:
    """Embed and store, chunk by chunk, what `picks_for_queries` would otherwise embed
    in one go inside its transaction: the papers and the queries lacking a vector."""
    interests = [interest_for_query(settings, q) for q in queries]
    if settings.matching.semantic == "off":
        return Embedded(0, 0)
    model = stored_model_name(settings.matching)
    with db.transaction(sessions) as session:
        stale = {
            p.id: paper_text(p.title, p.abstract)
            for p in _query_papers(session, days, now)
            if p.embedding is None or p.embedding_model != model
        }
    return store_new_embeddings(sessions, settings, stale, interests, progress)


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
