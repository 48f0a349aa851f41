"""Installation-wide values kept in the database."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.store.models import Meta

SECRET_KEY = "secret_key"
PAPERS_CHANGED = "papers_changed"  # a fresh value whenever an ingest changed any paper


def get_meta(session: Session, key: str) -> str | None:
    return session.scalar(select(Meta.value).where(Meta.key == key))


def set_meta(session: Session, key: str, value: str) -> None:
    """Insert or replace; two first writers racing get an IntegrityError (ingest retries)."""
    session.merge(Meta(key=key, value=value))


def generated_secret_key(session: Session) -> str:
    """The installation's own signing key when config sets none.

    Kept in the database so every process (web, workers, scheduler) signs and checks
    tokens with the same key, and links keep working across restarts.
    """
    existing = get_meta(session, SECRET_KEY)
    if existing is not None:
        return existing
    try:
        with session.begin_nested():
            session.add(Meta(key=SECRET_KEY, value=secrets.token_urlsafe(48)))
    except IntegrityError:  # another process created it first
        pass
    value = get_meta(session, SECRET_KEY)
    assert value is not None
    return value
