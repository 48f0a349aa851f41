"""Queries the public web app needs: the listing stamp, the edition archive and the
pending purge."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.orm import Session

from newsletter.store.meta import PAPERS_CHANGED, get_meta
from newsletter.store.models import (
    Delivery,
    DeliveryPaper,
    Edition,
    EditionPaper,
    Paper,
    Subscriber,
)


def listing_stamp(session: Session) -> tuple[object, ...]:
    """Changes whenever a paper is added or an ingest changed one (upvotes too): what
    the home page's cache is keyed on. A key lookup and two indexed maxima, so it
    stays cheap however many papers there are (an aggregate over a column without an
    index would read them all)."""
    # One maximum per query: SQLite reads an index end only for a lone min() or max().
    newest_id = session.scalar(select(func.max(Paper.id)))
    newest_listing = session.scalar(select(func.max(Paper.listed_at)))
    return (get_meta(session, PAPERS_CHANGED), newest_id, newest_listing)


def list_editions(session: Session, limit: int) -> Sequence[tuple[Edition, int]]:
    """Editions newest first, each with the number of papers in its general selection."""
    count = (
        select(func.count())
        .select_from(EditionPaper)
        .where(EditionPaper.edition_id == Edition.id)
        .scalar_subquery()
    )
    query = select(Edition, count).order_by(Edition.scheduled_for.desc(), Edition.id.desc())
    return [(edition, int(n)) for edition, n in session.execute(query.limit(limit)).all()]


def get_edition(session: Session, key: str) -> Edition | None:
    return session.scalar(select(Edition).where(Edition.key == key))


def edition_papers(session: Session, edition_id: int) -> Sequence[Paper]:
    query = (
        select(Paper)
        .join(EditionPaper, EditionPaper.paper_id == Paper.id)
        .where(EditionPaper.edition_id == edition_id)
        .order_by(EditionPaper.position, Paper.id)
    )
    return session.scalars(query).all()


def delivered_papers_of(
    session: Session, edition_id: int, subscriber_id: int
) -> Sequence[tuple[Paper, str]] | None:
    """The papers planned for one reader in one edition with their reasons, in the
    email's order; None when that reader has no delivery in it."""
    delivery = session.scalar(
        select(Delivery.id).where(
            Delivery.edition_id == edition_id, Delivery.subscriber_id == subscriber_id
        )
    )
    if delivery is None:
        return None
    query = (
        select(Paper, DeliveryPaper.reason)
        .join(DeliveryPaper, DeliveryPaper.paper_id == Paper.id)
        .where(DeliveryPaper.delivery_id == delivery)
        .order_by(DeliveryPaper.position, Paper.id)
    )
    return [(paper, str(reason)) for paper, reason in session.execute(query).all()]


def delete_pending_before(session: Session, cutoff: datetime) -> int:
    """Delete subscriptions still pending that were neither created nor sent a
    confirmation since `cutoff`. Their topics and interests go with them (ON DELETE).
    A returning reader (confirmed once, pending again) keeps their history."""
    stale = and_(
        Subscriber.status == "pending",
        Subscriber.confirmed_at.is_(None),
        Subscriber.created_at < cutoff,
        or_(Subscriber.confirmation_sent_at.is_(None), Subscriber.confirmation_sent_at < cutoff),
    )
    # ON DELETE CASCADE removes their topics and interests (db turns SQLite's
    # foreign_keys pragma on for every connection).
    result = session.execute(
        delete(Subscriber).where(stale).execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
