"""Interest embeddings: vectors of typed interests and topics, per model and text.

A text is keyed by its SHA-256 (fixed width, indexable everywhere); the vector is the
float32 bytes the matcher uses. Rows are only ever added: a text's vector under one
model never changes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from newsletter.store import db
from newsletter.store.bulk import insert_or_ignore
from newsletter.store.models import InterestEmbedding, utcnow

_CHUNK = 500  # stays under every backend's bound-parameter limit


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def load_vectors(session: Session, model: str, texts: Iterable[str]) -> dict[str, bytes]:
    """The stored vectors of those texts that have one under this model, by text."""
    by_key = {text_key(t): t for t in texts}
    keys = list(by_key)
    found: dict[str, bytes] = {}
    for start in range(0, len(keys), _CHUNK):
        rows = session.execute(
            select(InterestEmbedding.text_key, InterestEmbedding.vector).where(
                InterestEmbedding.model == model,
                InterestEmbedding.text_key.in_(keys[start : start + _CHUNK]),
            )
        )
        for key, vector in rows:
            found[by_key[key]] = vector
    return found


def save_vectors(session: Session, model: str, vectors: Mapping[str, bytes]) -> None:
    """Store these texts' vectors; a text already stored (by a concurrent run) is kept."""
    now = utcnow()
    rows = [
        {"model": model, "text_key": text_key(t), "vector": v, "created_at": now}
        for t, v in vectors.items()
    ]
    for start in range(0, len(rows), _CHUNK):
        statement = insert_or_ignore(session, InterestEmbedding).values(
            rows[start : start + _CHUNK]
        )
        session.execute(statement.on_conflict_do_nothing(index_elements=["model", "text_key"]))
    session.flush()


def count_vectors(session: Session, model: str | None = None) -> int:
    query = select(func.count()).select_from(InterestEmbedding)
    if model is not None:
        query = query.where(InterestEmbedding.model == model)
    return int(session.scalar(query) or 0)


def save_vectors_apart(session: Session, model: str, vectors: Mapping[str, bytes]) -> None:
    """Store vectors so that a rollback of `session`'s transaction (a dry run) keeps
    them: on PostgreSQL in a transaction of their own. SQLite has one writer and the
    caller (the planner) may hold it, so there they go into the caller's transaction."""
    bind = session.get_bind()
    if bind.dialect.name == "sqlite":
        save_vectors(session, model, vectors)
        return
    engine = bind if isinstance(bind, Engine) else bind.engine
    with db.transaction(db.session_factory(engine)) as own:
        save_vectors(own, model, vectors)
