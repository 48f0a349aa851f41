"""What comes back from the mail system: bounces, complaints and unsubscribes
(`mail_events`), and inbound mail nobody could read (`inbound_messages`).

A report names its message in one of three ways, best first: the delivery id signed
into a VERP envelope sender, the Message-ID a relay's webhook echoes, or only the
recipient's address (then the reader's latest sent delivery is taken).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.store.models import Delivery, InboundMessage, MailEvent, Subscriber
from newsletter.store.statuses import DeliveryStatus, MailEventKind


@dataclass(frozen=True)
class Target:
    """The reader (and, when known, the delivery and edition) a report is about."""

    subscriber_id: int
    delivery_id: int | None = None
    edition_id: int | None = None


def target_of_delivery(session: Session, delivery_id: int) -> Target | None:
    row = session.execute(
        select(Delivery.subscriber_id, Delivery.edition_id).where(Delivery.id == delivery_id)
    ).first()
    return Target(row.subscriber_id, delivery_id, row.edition_id) if row else None


def target_of_message_id(session: Session, message_id: str) -> Target | None:
    """The delivery sent with this Message-ID (with or without its angle brackets)."""
    bare = message_id.strip().strip("<>")
    row = session.execute(
        select(Delivery.id, Delivery.subscriber_id, Delivery.edition_id).where(
            Delivery.message_id == f"<{bare}>"
        )
    ).first()
    return Target(row.subscriber_id, row.id, row.edition_id) if row else None


def target_of_email(session: Session, email: str) -> Target | None:
    """The reader with this address, and their latest sent delivery if any."""
    subscriber_id = session.scalar(select(Subscriber.id).where(Subscriber.email == email))
    if subscriber_id is None:
        return None
    row = session.execute(
        select(Delivery.id, Delivery.edition_id)
        .where(Delivery.subscriber_id == subscriber_id, Delivery.status == DeliveryStatus.SENT)
        .order_by(Delivery.sent_at.desc(), Delivery.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return Target(subscriber_id)
    return Target(subscriber_id, row.id, row.edition_id)


def add_event(
    session: Session,
    kind: str,
    source: str,
    target: Target | None,
    detail: str,
    at: datetime,
    event_key: str | None = None,
) -> bool:
    """Record one event; False when an event with this key was recorded before (a
    webhook retried, a DSN delivered twice), and then nothing is written."""
    seen = select(MailEvent.id).where(MailEvent.event_key == event_key)
    if event_key is not None and session.scalar(seen) is not None:
        return False
    event = MailEvent(
        kind=kind,
        source=source,
        subscriber_id=target.subscriber_id if target else None,
        delivery_id=target.delivery_id if target else None,
        edition_id=target.edition_id if target else None,
        detail=detail[:1000],
        event_key=event_key,
        at=at,
    )
    try:
        with session.begin_nested():  # a concurrent twin of the same key loses here
            session.add(event)
    except IntegrityError:
        return False
    return True


def add_inbound(
    session: Session,
    *,
    mail_from: str,
    rcpt_to: Sequence[str],
    subject: str,
    reason: str,
    raw: bytes,
    at: datetime,
) -> int:
    message = InboundMessage(
        received_at=at,
        mail_from=mail_from[:320],
        rcpt_to=", ".join(rcpt_to),
        subject=subject[:500],
        reason=reason[:200],
        size=len(raw),
        raw=raw,
    )
    session.add(message)
    session.flush()
    return message.id


@dataclass(frozen=True)
class InboundInfo:
    id: int
    received_at: datetime
    mail_from: str
    rcpt_to: str
    subject: str
    reason: str
    size: int


def recent_inbound(session: Session, limit: int = 50) -> list[InboundInfo]:
    rows = session.execute(
        select(
            InboundMessage.id,
            InboundMessage.received_at,
            InboundMessage.mail_from,
            InboundMessage.rcpt_to,
            InboundMessage.subject,
            InboundMessage.reason,
            InboundMessage.size,
        )
        .order_by(InboundMessage.id.desc())
        .limit(limit)
    )
    return [InboundInfo(*row) for row in rows]


@dataclass(frozen=True)
class EventCounts:
    hard_bounces: int = 0
    soft_bounces: int = 0
    complaints: int = 0
    unsubscribes: int = 0


def event_counts(session: Session, since: datetime | None = None) -> EventCounts:
    """Events of each kind, from every source, at or after `since` (all time if None)."""
    query = select(MailEvent.kind, func.count()).group_by(MailEvent.kind)
    if since is not None:
        query = query.where(MailEvent.at >= since)
    return _counts({kind: count for kind, count in session.execute(query)})


def event_counts_by_edition(session: Session, edition_ids: Sequence[int]) -> dict[int, EventCounts]:
    rows = session.execute(
        select(MailEvent.edition_id, MailEvent.kind, func.count())
        .where(MailEvent.edition_id.in_(edition_ids))
        .group_by(MailEvent.edition_id, MailEvent.kind)
    )
    by_edition: dict[int, dict[str, int]] = {}
    for edition_id, kind, count in rows:
        if edition_id is not None:
            by_edition.setdefault(edition_id, {})[kind] = count
    return {edition: _counts(kinds) for edition, kinds in by_edition.items()}


def _counts(kinds: dict[str, int]) -> EventCounts:
    return EventCounts(
        hard_bounces=kinds.get(MailEventKind.HARD_BOUNCE, 0),
        soft_bounces=kinds.get(MailEventKind.SOFT_BOUNCE, 0),
        complaints=kinds.get(MailEventKind.COMPLAINT, 0),
        unsubscribes=kinds.get(MailEventKind.UNSUBSCRIBE, 0),
    )


def sent_since(session: Session, since: datetime | None = None) -> int:
    """Messages the relay accepted at or after `since`: the rates' denominator."""
    query = select(func.count()).select_from(Delivery).where(Delivery.status == DeliveryStatus.SENT)
    if since is not None:
        query = query.where(Delivery.sent_at >= since)
    return int(session.scalar(query) or 0)
