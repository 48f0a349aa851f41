"""Editions: one row per scheduled week, its general paper selection, and its state
(sending, paused by the failure breaker, done once nothing is left open).

The unique edition key makes planning idempotent: inserts use ON CONFLICT DO NOTHING,
so two planners racing each other both succeed and the edition exists once.
`EditionInfo` is the one shape an edition has outside the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    func,
    select,
    update,
)
from sqlalchemy.orm import Session

from newsletter.store.bulk import insert_or_ignore
from newsletter.store.models import (
    Delivery,
    DeliveryAttempt,
    DeliveryPaper,
    Edition,
    EditionPaper,
    Paper,
)
from newsletter.store.statuses import OPEN_STATUSES, EditionStatus


def any_open(session: Session, edition_id: int) -> bool:
    """Whether anything is left to send: stops at the first open delivery, where a
    count would read them all (this is asked after every batch).

    `edition_id + 0` keeps SQLite off the (edition, subscriber) index, whose walk
    would pass every delivery already sent; the status index holds only open ones.
    """
    query = select(Delivery.id).where(
        Delivery.edition_id + 0 == edition_id, Delivery.status.in_(OPEN_STATUSES)
    )
    return session.scalar(query.limit(1)) is not None


@dataclass(frozen=True)
class EditionInfo:
    """An edition as it leaves the store: the one shape services and commands see."""

    id: int
    key: str
    window_start: datetime
    window_end: datetime
    scheduled_for: datetime
    status: str  # an EditionStatus
    paused_reason: str | None
    completed_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, row: Edition) -> EditionInfo:
        return cls(
            row.id,
            row.key,
            row.window_start,
            row.window_end,
            row.scheduled_for,
            row.status,
            row.paused_reason,
            row.completed_at,
            row.created_at,
        )


# --- editions -------------------------------------------------------------------------


def ensure_edition(
    session: Session,
    key: str,
    window_start: datetime,
    window_end: datetime,
    scheduled_for: datetime,
) -> tuple[EditionInfo, bool]:
    """The edition with this key, created if missing; True when this call created it."""
    statement = insert_or_ignore(session, Edition).values(
        key=key,
        window_start=window_start,
        window_end=window_end,
        scheduled_for=scheduled_for,
        status=EditionStatus.SENDING,
    )
    # RETURNING, not rowcount: psycopg reports -1 rows for an INSERT through SQLAlchemy.
    result = session.execute(
        statement.on_conflict_do_nothing(index_elements=["key"]).returning(Edition.id)
    )
    created = result.first() is not None
    edition = get_edition(session, key)
    assert edition is not None
    return edition, created


def get_edition(session: Session, key: str) -> EditionInfo | None:
    row = session.scalar(select(Edition).where(Edition.key == key))
    return None if row is None else EditionInfo.of(row)


def get_edition_by_id(session: Session, edition_id: int) -> EditionInfo | None:
    row = session.get(Edition, edition_id, populate_existing=True)
    return None if row is None else EditionInfo.of(row)


def add_edition_papers(session: Session, edition_id: int, paper_ids: Sequence[int]) -> None:
    rows = [
        {"edition_id": edition_id, "paper_id": paper_id, "position": position}
        for position, paper_id in enumerate(paper_ids, start=1)
    ]
    if rows:
        session.execute(insert_or_ignore(session, EditionPaper).on_conflict_do_nothing(), rows)


def widen_empty_edition(
    session: Session, edition_id: int, window_start: datetime, window_end: datetime
) -> EditionInfo:
    """Give an edition that has no delivery yet a new window (planned again later).

    An edition planned before any paper was ingested would otherwise keep its empty
    window for good; once a delivery exists the window is what readers were sent.
    """
    has_deliveries = select(Delivery.id).where(Delivery.edition_id == edition_id).exists()
    session.execute(
        update(Edition)
        .where(Edition.id == edition_id, ~has_deliveries)
        .values(window_start=window_start, window_end=window_end)
    )
    edition = get_edition_by_id(session, edition_id)
    assert edition is not None
    return edition


def has_deliveries(session: Session, edition_id: int) -> bool:
    """Whether anything was planned in the edition (stops at the first delivery)."""
    query = select(Delivery.id).where(Delivery.edition_id == edition_id).limit(1)
    return session.scalar(query) is not None


def pause_edition(session: Session, edition_id: int, reason: str) -> None:
    session.execute(
        update(Edition)
        .where(Edition.id == edition_id, Edition.status == EditionStatus.SENDING)
        .values(status=EditionStatus.PAUSED, paused_reason=reason)
    )


def resume_edition(session: Session, edition_id: int) -> bool:
    """Set a paused (or done) edition sending again; True when it was paused.

    The failure breaker then judges only attempts made from now on: the failures
    that paused it must not pause it again once the cause is fixed.
    """
    last_attempt = (
        select(func.max(DeliveryAttempt.id))
        .where(DeliveryAttempt.edition_id == edition_id)
        .scalar_subquery()
    )
    result = session.execute(
        update(Edition)
        .where(Edition.id == edition_id, Edition.status != EditionStatus.SENDING)
        .values(
            status=EditionStatus.SENDING,
            paused_reason=None,
            completed_at=None,
            judged_after_attempt=last_attempt,
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def finish_edition_if_complete(session: Session, edition_id: int, now: datetime) -> bool:
    """Mark the edition done when it has deliveries and none is left to send.

    An edition with no delivery at all stays open: it was planned before there was
    anything to send, and planning it again may still fill it.
    """
    if any_open(session, edition_id) or not has_deliveries(session, edition_id):
        return False
    result = session.execute(
        update(Edition)
        .where(Edition.id == edition_id, Edition.status == EditionStatus.SENDING)
        .values(status=EditionStatus.DONE, completed_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def previous_window_end(session: Session, key: str) -> datetime | None:
    """Where the window of the latest edition before `key` ended (keys sort by week)."""
    return session.scalar(select(func.max(Edition.window_end)).where(Edition.key < key))


def latest_editions(session: Session, limit: int) -> list[EditionInfo]:
    """The newest editions first (by send time)."""
    query = select(Edition).order_by(Edition.scheduled_for.desc(), Edition.id.desc())
    return [EditionInfo.of(row) for row in session.scalars(query.limit(limit))]


def edition_status(session: Session, key: str) -> str | None:
    """The edition's status, or None when it was never planned."""
    found: str | None = session.scalar(select(Edition.status).where(Edition.key == key))
    return found


# --- the archive: what the public pages show of past editions -------------------------


def list_editions(session: Session, limit: int) -> list[tuple[EditionInfo, int]]:
    """Editions newest first, each with the number of papers in its general selection."""
    count = (
        select(func.count())
        .select_from(EditionPaper)
        .where(EditionPaper.edition_id == Edition.id)
        .scalar_subquery()
    )
    query = select(Edition, count).order_by(Edition.scheduled_for.desc(), Edition.id.desc())
    rows = session.execute(query.limit(limit)).all()
    return [(EditionInfo.of(edition), int(n)) for edition, n in rows]


def edition_papers(session: Session, edition_id: int) -> Sequence[Paper]:
    """The edition's general selection, in its order."""
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
