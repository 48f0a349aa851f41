"""Everything stored about one reader's mail, for their data export: each delivery with
the papers it carried, and what came back (bounces, complaints, unsubscribes)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.store.models import Delivery, DeliveryPaper, Edition, MailEvent, Paper


@dataclass(frozen=True)
class SentPaper:
    external_id: str
    title: str
    position: int
    reason: str


@dataclass(frozen=True)
class DeliveryRecord:
    edition: str
    kind: str
    status: str
    attempts: int
    last_error: str | None
    message_id: str | None
    created_at: datetime
    sent_at: datetime | None
    papers: tuple[SentPaper, ...]


@dataclass(frozen=True)
class EventRecord:
    kind: str
    source: str
    edition: str | None
    detail: str
    at: datetime


def deliveries_of(session: Session, subscriber_id: int) -> list[DeliveryRecord]:
    """The reader's deliveries, newest edition first, each with its papers in order."""
    rows = session.execute(
        select(Delivery, Edition.key)
        .join(Edition, Edition.id == Delivery.edition_id)
        .where(Delivery.subscriber_id == subscriber_id)
        .order_by(Edition.scheduled_for.desc(), Delivery.id.desc())
    ).all()
    papers: dict[int, list[SentPaper]] = {}
    query = (
        select(DeliveryPaper.delivery_id, Paper.external_id, Paper.title, DeliveryPaper.position)
        .add_columns(DeliveryPaper.reason)
        .join(Paper, Paper.id == DeliveryPaper.paper_id)
        .where(DeliveryPaper.subscriber_id == subscriber_id)
        .order_by(DeliveryPaper.delivery_id, DeliveryPaper.position)
    )
    for delivery_id, external_id, title, position, reason in session.execute(query):
        papers.setdefault(delivery_id, []).append(
            SentPaper(external_id, title, int(position), str(reason))
        )
    return [
        DeliveryRecord(
            edition=key,
            kind=d.kind,
            status=d.status,
            attempts=d.attempts,
            last_error=d.last_error,
            message_id=d.message_id,
            created_at=d.created_at,
            sent_at=d.sent_at,
            papers=tuple(papers.get(d.id, ())),
        )
        for d, key in rows
    ]


def events_of(session: Session, subscriber_id: int) -> list[EventRecord]:
    rows = session.execute(
        select(MailEvent, Edition.key)
        .outerjoin(Edition, Edition.id == MailEvent.edition_id)
        .where(MailEvent.subscriber_id == subscriber_id)
        .order_by(MailEvent.at.desc(), MailEvent.id.desc())
    ).all()
    return [EventRecord(e.kind, e.source, key, e.detail, e.at) for e, key in rows]
