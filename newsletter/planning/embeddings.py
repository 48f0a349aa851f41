"""Embedding papers and interests with the configured model, and keeping the vectors.

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

No model is loaded unless there is text to embed; once loaded it is kept for the process.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from sqlalchemy.orm import Session

from newsletter.config import MatchingConfig, Settings
from newsletter.errors import MatcherUnavailable
from newsletter.matching import Interest, semantic_text
from newsletter.matching.embedder import (
    Embedder,
    EmbedderUnavailable,
    from_bytes,
    load_embedder,
    paper_text,
    to_bytes,
)
from newsletter.runtime import Runtime
from newsletter.store import db
from newsletter.store import embeddings as store_embeddings
from newsletter.store import papers as store_papers
from newsletter.store.models import Paper

log = logging.getLogger(__name__)
K = TypeVar("K", int, str)
_INTEREST_CACHE_SIZE = 50_000  # ~75 MB of 384-float vectors at most


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
        report_unavailable(config, exc, quiet)
        return None


def report_unavailable(config: MatchingConfig, exc: EmbedderUnavailable, quiet: bool) -> None:
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
    blobs = [(paper, to_bytes(v)) for paper, v in zip(stale, vectors, strict=True)]
    store_papers.attach_embeddings(session, embedder.name, blobs)
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
    context: Runtime,
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
        return store_vectors(context, embedder, papers, interests, progress)
    except EmbedderUnavailable as exc:  # the model failed to load on first use
        report_unavailable(settings.matching, exc, quiet=True)
        return Embedded(0, 0)


def store_vectors(
    context: Runtime,
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
    texts = _missing_interest_texts(context, embedder.name, interests)
    total = len(papers) + len(texts)
    done = 0

    def tick(count: int) -> None:
        nonlocal done
        done += count
        if progress is not None:
            progress(done, total)

    if total:
        tick(0)
    _embed_chunks(context, embedder, list(papers.items()), store_papers.set_embeddings, chunk, tick)
    pairs = [(t, t) for t in texts]
    _embed_chunks(context, embedder, pairs, store_embeddings.save_vectors, chunk, tick)
    return Embedded(len(papers), len(texts))


def _embed_chunks(
    context: Runtime,
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
        with db.transaction(context.sessions, immediate=True) as session:
            save(session, embedder.name, blobs)
        tick(len(part))


def _missing_interest_texts(
    context: Runtime, model: str, interests: Sequence[Interest]
) -> list[str]:
    texts = list(dict.fromkeys(semantic_text(i) for i in interests))
    if not texts:
        return []
    with db.transaction(context.sessions) as session:
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
            store_embeddings.save_vectors_apart(
                session, name, {t: to_bytes(v) for t, v in zip(missing, fresh, strict=True)}
            )
    rows = []
    for text in texts:
        key = (name, text)
        _interest_vectors.move_to_end(key)
        rows.append(_interest_vectors[key])
    while len(_interest_vectors) > _INTEREST_CACHE_SIZE:
        _interest_vectors.popitem(last=False)
    return np.vstack(rows).astype(np.float32, copy=False)


def forget_cached_interests() -> None:
    """Empty the process cache (tests and benchmarks measure the store path with it)."""
    _interest_vectors.clear()
