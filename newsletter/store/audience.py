"""Read-only views of the readers for the admin: a search by address, and counts for
the overview (by status, by topic, and how many were on the list at given moments)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from newsletter.store.models import Subscriber, SubscriberTopic
from newsletter.store.statuses import SubscriberStatus


def find_by_email(session: Session, fragment: str, limit: int = 50) -> Sequence[Subscriber]:
    """Readers whose address contains `fragment` (case-insensitive, as typed), by address.

    LIKE wildcards typed by the admin are matched literally.
    """
    escaped = fragment.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    query = (
        select(Subscriber)
        .where(func.lower(Subscriber.email).like(f"%{escaped}%", escape="\\"))
        .order_by(Subscriber.email)
        .limit(limit)
    )
    return session.scalars(query).all()


def readers_by_status(session: Session) -> dict[str, int]:
    """Every status with its count, zero included, so the numbers always line up."""
    rows = session.execute(select(Subscriber.status, func.count()).group_by(Subscriber.status))
    found = {str(status): int(count) for status, count in rows}
    return {status.value: found.get(status.value, 0) for status in SubscriberStatus}


def paused_readers(session: Session) -> int:
    query = select(func.count()).where(
        Subscriber.status == SubscriberStatus.ACTIVE, Subscriber.paused.is_(True)
    )
    return int(session.scalar(query) or 0)


def active_readers_by_topic(session: Session) -> dict[str, int]:
    """Active readers per topic slug (a reader with two topics counts in both)."""
    query = (
        select(SubscriberTopic.topic, func.count())
        .join(Subscriber, Subscriber.id == SubscriberTopic.subscriber_id)
        .where(Subscriber.status == SubscriberStatus.ACTIVE)
        .group_by(SubscriberTopic.topic)
    )
    return {str(topic): int(count) for topic, count in session.execute(query)}


def readers_on_list_at(session: Session, moments: Sequence[datetime]) -> list[int]:
    """For each moment, the readers confirmed by then who had not left (unsubscribed or
    bounced) by then: one query, one sum per moment.

    Pending readers never count; a reader deleted on request leaves the past counts
    too, which is what erasing them means.
    """
    if not moments:
        return []
    sums = []
    for moment in moments:
        on_list = and_(
            Subscriber.confirmed_at.is_not(None),
            Subscriber.confirmed_at <= moment,
            or_(Subscriber.unsubscribed_at.is_(None), Subscriber.unsubscribed_at > moment),
            or_(Subscriber.bounced_at.is_(None), Subscriber.bounced_at > moment),
        )
        sums.append(func.sum(case((on_list, 1), else_=0)))
    row = session.execute(select(*sums)).one()
    return [int(value or 0) for value in row]
