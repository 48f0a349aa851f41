"""Read-only queries behind `newsletter status`: how far each edition has got (the
editions themselves come from store.editions)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from newsletter.store.models import Delivery
from newsletter.store.statuses import DeliveryStatus

_COUNTED = (
    DeliveryStatus.SENT,
    DeliveryStatus.SENDING,
    DeliveryStatus.FAILED,
    DeliveryStatus.SKIPPED,
)  # in the order tallies() reads them


@dataclass(frozen=True)
class DeliveryTally:
    """Deliveries of one edition by state; `due_later` are queued for a time after now."""

    planned: int = 0
    sent: int = 0
    due_now: int = 0
    due_later: int = 0
    sending: int = 0
    failed: int = 0
    skipped: int = 0
    retrying: int = 0  # queued again after a temporary failure


def tallies(
    session: Session, edition_ids: Sequence[int], now: datetime
) -> dict[int, DeliveryTally]:
    """One grouped query for all the given editions."""
    if not edition_ids:
        return {}
    queued = Delivery.status == DeliveryStatus.QUEUED
    later = case((queued & (Delivery.next_attempt_at > now), 1), else_=0)
    due = case((queued & (Delivery.next_attempt_at <= now), 1), else_=0)
    retrying = case((queued & (Delivery.attempts > 0), 1), else_=0)
    query = (
        select(
            Delivery.edition_id,
            func.count(),
            *(func.sum(case((Delivery.status == s, 1), else_=0)) for s in _COUNTED),
            func.sum(due),
            func.sum(later),
            func.sum(retrying),
        )
        .where(Delivery.edition_id.in_(edition_ids))
        .group_by(Delivery.edition_id)
    )
    found: dict[int, DeliveryTally] = {}
    for (
        edition_id,
        planned,
        sent,
        sending,
        failed,
        skipped,
        due_n,
        later_n,
        retry_n,
    ) in session.execute(query):
        found[edition_id] = DeliveryTally(
            planned=int(planned),
            sent=int(sent or 0),
            due_now=int(due_n or 0),
            due_later=int(later_n or 0),
            sending=int(sending or 0),
            failed=int(failed or 0),
            skipped=int(skipped or 0),
            retrying=int(retry_n or 0),
        )
    return found


def failure_reasons(session: Session, edition_id: int, limit: int = 3) -> list[tuple[str, int]]:
    """The most common last errors of an edition's failed deliveries, with counts."""
    query = (
        select(Delivery.last_error, func.count())
        .where(
            Delivery.edition_id == edition_id,
            Delivery.status == DeliveryStatus.FAILED,
            Delivery.last_error.is_not(None),
        )
        .group_by(Delivery.last_error)
        .order_by(func.count().desc(), Delivery.last_error)
        .limit(limit)
    )
    return [(str(error), int(count)) for error, count in session.execute(query)]


@dataclass(frozen=True)
class SendSpan:
    """When an edition's messages were accepted: the first and last, and how many."""

    first_sent: datetime
    last_sent: datetime
    sent: int

    @property
    def seconds(self) -> float:
        return (self.last_sent - self.first_sent).total_seconds()

    @property
    def per_second(self) -> float | None:
        """Messages per second over the span; None for one message (no span to divide by)."""
        return (self.sent - 1) / self.seconds if self.seconds > 0 and self.sent > 1 else None


def send_spans(session: Session, edition_ids: Sequence[int]) -> dict[int, SendSpan]:
    """The sending span of each edition that sent anything (one grouped query)."""
    if not edition_ids:
        return {}
    query = (
        select(
            Delivery.edition_id,
            func.min(Delivery.sent_at),
            func.max(Delivery.sent_at),
            func.count(),
        )
        .where(Delivery.edition_id.in_(edition_ids), Delivery.status == DeliveryStatus.SENT)
        .group_by(Delivery.edition_id)
    )
    return {
        int(edition_id): SendSpan(first, last, int(count))
        for edition_id, first, last, count in session.execute(query)
        if first is not None and last is not None
    }
