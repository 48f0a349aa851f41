"""Claims: leasing due deliveries to one worker so that two never hold the same one.

PostgreSQL skips the rows another worker has locked (FOR UPDATE SKIP LOCKED); SQLite
runs the claim inside a BEGIN IMMEDIATE transaction (one writer). A lease that runs out
(a worker died) makes its deliveries claimable again; `take_back` frees at once the
claims of a worker known to be gone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Row,
    and_,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from newsletter.store.bulk import ID_CHUNK, insert_or_ignore
from newsletter.store.models import (
    Delivery,
    DeliveryAttempt,
    Edition,
    Subscriber,
)
from newsletter.store.statuses import DeliveryStatus, EditionStatus, SubscriberStatus


@dataclass(frozen=True)
class ClaimedDelivery:
    """A leased delivery and what sending it needs, detached from the session."""

    id: int
    edition_id: int
    subscriber_id: int
    email: str
    kind: str
    attempts: int
    hard_bounces: int


# --- claiming and outcomes ------------------------------------------------------------


def claim_batch(
    session: Session,
    owner: str,
    now: datetime,
    lease_seconds: float,
    limit: int,
    *,
    edition_id: int | None = None,
    subscriber_id: int | None = None,
    ignore_schedule: bool = False,
) -> tuple[list[ClaimedDelivery], int]:
    """Lease up to `limit` due deliveries; returns them and how many were skipped.

    Due: queued with next_attempt_at reached (with `ignore_schedule`, also never tried
    ones: send-now delivers at once), or leased by someone whose lease expired.
    Deliveries whose subscriber is no longer active (or paused) are marked skipped
    here, so an unsubscribe after planning is honoured. Run it in a transaction that
    is immediate on SQLite (db.transaction(…, immediate=True)).
    """
    queued_due = Delivery.next_attempt_at <= now
    if ignore_schedule:
        queued_due = or_(queued_due, Delivery.attempts == 0)
    # Queued and expired-lease deliveries are read apart and merged: each part walks
    # the (status, next_attempt_at) index in claim order and stops after `limit` rows.
    # One query with OR read every delivery of the edition and sorted them, once per
    # batch: a cost growing with the edition, paid hundreds of times per edition.
    parts = (
        and_(Delivery.status == DeliveryStatus.QUEUED, queued_due),
        and_(Delivery.status == DeliveryStatus.SENDING, Delivery.leased_until < now),
    )
    sending = select(Edition.id).where(Edition.status == EditionStatus.SENDING)
    rows: list[Row[Any]] = []
    for due in parts:
        query = (
            select(Delivery.id, Delivery.edition_id, Delivery.subscriber_id, Delivery.kind)
            .add_columns(Delivery.attempts, Delivery.next_attempt_at)
            .add_columns(Subscriber.email, Subscriber.status)
            .add_columns(Subscriber.paused, Subscriber.hard_bounces)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(due, Delivery.edition_id.in_(sending))
            .order_by(Delivery.next_attempt_at, Delivery.id)
            .limit(limit)
            .with_for_update(skip_locked=True, of=Delivery)
        )
        if edition_id is not None:
            query = query.where(Delivery.edition_id == edition_id)
        if subscriber_id is not None:
            query = query.where(Delivery.subscriber_id == subscriber_id)
        rows += session.execute(query).all()
    rows = sorted(rows, key=lambda r: (r.next_attempt_at, r.id))[:limit]
    claimed = [
        ClaimedDelivery(
            r.id, r.edition_id, r.subscriber_id, r.email, r.kind, r.attempts, r.hard_bounces
        )
        for r in rows
        if r.status == SubscriberStatus.ACTIVE and not r.paused
    ]
    skipped = [r.id for r in rows if r.status != SubscriberStatus.ACTIVE or r.paused]
    lease_until = now + timedelta(seconds=lease_seconds)
    for start in range(0, len(claimed), ID_CHUNK):
        ids = [c.id for c in claimed[start : start + ID_CHUNK]]
        # By id alone: the rows were read in this transaction, which holds them (the
        # write lock on SQLite, FOR UPDATE elsewhere). A status test here would lead
        # SQLite to scan the status index over every open delivery instead.
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(ids))
            .values(status=DeliveryStatus.SENDING, lease_owner=owner, leased_until=lease_until)
        )
    for start in range(0, len(skipped), ID_CHUNK):
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(skipped[start : start + ID_CHUNK]))
            .values(status=DeliveryStatus.SKIPPED, lease_owner=None, leased_until=None)
        )
    return claimed, len(skipped)


def release(session: Session, owner: str, delivery_ids: Sequence[int]) -> None:
    """Give leased deliveries back untouched (a worker stopping before sending them)."""
    for start in range(0, len(delivery_ids), ID_CHUNK):
        session.execute(
            update(Delivery)
            .where(
                Delivery.id.in_(delivery_ids[start : start + ID_CHUNK]),
                Delivery.lease_owner == owner,
                Delivery.status == DeliveryStatus.SENDING,
            )
            .values(status=DeliveryStatus.QUEUED, lease_owner=None, leased_until=None)
        )


def skip_claimed(session: Session, owner: str, delivery_id: int) -> None:
    """A leased delivery whose reader left before it went out: never sent."""
    session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.lease_owner == owner)
        .values(status=DeliveryStatus.SKIPPED, lease_owner=None, leased_until=None)
    )


def readers_left_since(session: Session, since: datetime) -> set[int]:
    """Readers who unsubscribed or bounced at `since` or later (checked at send time)."""
    left_at = func.coalesce(Subscriber.unsubscribed_at, Subscriber.bounced_at)
    query = select(Subscriber.id).where(
        Subscriber.status.in_((SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED)),
        left_at >= since,
    )
    return set(session.scalars(query))


@dataclass(frozen=True)
class LeaseHold:
    """Deliveries of one lease owner (host:pid:run) not yet expired."""

    owner: str
    count: int
    until: datetime


def lease_holders(session: Session, edition_id: int | None, now: datetime) -> list[LeaseHold]:
    query = (
        select(Delivery.lease_owner, func.count(), func.max(Delivery.leased_until))
        .where(Delivery.status == DeliveryStatus.SENDING, Delivery.leased_until >= now)
        .group_by(Delivery.lease_owner)
        .order_by(Delivery.lease_owner)
    )
    if edition_id is not None:
        query = query.where(Delivery.edition_id == edition_id)
    rows = session.execute(query)
    return [LeaseHold(owner or "", count, until or now) for owner, count, until in rows]


def take_back(session: Session, owners: Sequence[str]) -> int:
    """Requeue what these (gone) lease owners held, as if their leases had expired."""
    result = session.execute(
        update(Delivery)
        .where(Delivery.status == DeliveryStatus.SENDING, Delivery.lease_owner.in_(owners))
        .values(status=DeliveryStatus.QUEUED, lease_owner=None, leased_until=None)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def record_attempt(
    session: Session,
    delivery: ClaimedDelivery,
    now: datetime,
    ok: bool,
    permanent: bool = False,
    error: str | None = None,
) -> None:
    session.execute(
        insert_or_ignore(session, DeliveryAttempt).values(
            delivery_id=delivery.id,
            edition_id=delivery.edition_id,
            at=now,
            ok=ok,
            permanent=permanent,
            error=error,
        )
    )
