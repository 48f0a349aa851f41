"""Apply what came back: find the delivery and reader each event is about, record it
once, and act on it the same whatever the way in (SMTP session, inbound mail, webhook).

- a hard bounce counts toward `delivery.bounce_after`, like a 5xx during the session;
- a soft bounce is recorded for the rates, nothing more;
- a complaint or an unsubscribe mail unsubscribes the reader at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy.orm import Session

from newsletter.errors import InvalidInput
from newsletter.mail.addresses import normalize_email
from newsletter.mail.verp import ReturnAddresses
from newsletter.returns.events import ReturnEvent
from newsletter.returns.original import verp_delivery
from newsletter.runtime import Runtime
from newsletter.store import db, deliveries
from newsletter.store import returns as store
from newsletter.store import subscribers as subscriber_store
from newsletter.store.models import utcnow
from newsletter.store.returns import Target
from newsletter.store.statuses import MailEventKind, SubscriberStatus

LEAVES = (MailEventKind.COMPLAINT, MailEventKind.UNSUBSCRIBE)


@dataclass(frozen=True)
class Applied:
    event: ReturnEvent
    target: Target | None  # None: no reader of ours matches; nothing was recorded
    recorded: bool = False  # False when this report was seen before
    bounced: bool = False  # this hard bounce made the reader `bounced`
    unsubscribed: bool = False


def apply(
    context: Runtime, events: Sequence[ReturnEvent], now: datetime | None = None
) -> list[Applied]:
    """Record and act on `events` in one transaction: a report is applied whole or not
    at all."""
    now = now or utcnow()
    bounce_after = context.settings.delivery.bounce_after
    returns = ReturnAddresses.of(context.settings.bounce_address)
    signed = [_signed_delivery(event, returns, context.secret_key) for event in events]
    with db.transaction(context.sessions, immediate=True) as session:
        return [_apply_one(session, event, bounce_after, now) for event in signed]


def _signed_delivery(event: ReturnEvent, returns: ReturnAddresses, secret_key: str) -> ReturnEvent:
    """The event with the delivery its verified VERP return path names, if any."""
    if event.delivery_id is not None or not event.return_path:
        return event
    delivery_id = verp_delivery(event.return_path, returns, secret_key)
    return event if delivery_id is None else replace(event, delivery_id=delivery_id)


def _apply_one(session: Session, event: ReturnEvent, bounce_after: int, now: datetime) -> Applied:
    target = find_target(session, event)
    if target is None:
        return Applied(event, None)
    recorded = store.add_event(
        session, event.kind, event.source, target, event.detail, now, event_key=event.key
    )
    if not recorded:
        return Applied(event, target)
    bounced = unsubscribed = False
    if event.kind == MailEventKind.HARD_BOUNCE:
        bounced = deliveries.record_hard_bounce(session, target.subscriber_id, bounce_after, now)
    elif event.kind in LEAVES:
        unsubscribed = _leave(session, target.subscriber_id, now)
    return Applied(event, target, True, bounced, unsubscribed)


def find_target(session: Session, event: ReturnEvent) -> Target | None:
    """The delivery and reader the event names, trying its clues best first."""
    found = None
    if event.delivery_id is not None:
        found = store.target_of_delivery(session, event.delivery_id)
    if found is None and event.message_id:
        found = store.target_of_message_id(session, event.message_id)
    if found is None and event.subscriber_id is not None:
        known = subscriber_store.get_subscriber_by_id(session, event.subscriber_id)
        found = Target(event.subscriber_id) if known is not None else None
    if found is not None:
        return found
    if event.email:
        try:
            email = normalize_email(event.email)
        except InvalidInput:
            return None
        return store.target_of_email(session, email)
    return None


def _leave(session: Session, subscriber_id: int, now: datetime) -> bool:
    """Unsubscribe; a bounced or already unsubscribed reader stays as they are."""
    subscriber = subscriber_store.get_subscriber_by_id(session, subscriber_id)
    if subscriber is None or subscriber.status not in (
        SubscriberStatus.PENDING,
        SubscriberStatus.ACTIVE,
    ):
        return False
    subscriber_store.set_status(subscriber, SubscriberStatus.UNSUBSCRIBED, now)
    return True
