"""A reader's record for the admin: find by address, export as JSON, erase.

The export is what a data-access request asks for (everything stored about the
person); the erasure is what a deletion request asks for: their rows go, not only
their subscription, and the answer says how many rows of each table went.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from newsletter.errors import NotFound
from newsletter.readers.subscriptions import SubscriberInfo
from newsletter.runtime import Runtime
from newsletter.store import audience, db, reader_data
from newsletter.store import examples as examples_store
from newsletter.store import subscribers as subscriber_store
from newsletter.store.models import Subscriber

SEARCH_LIMIT = 50


@dataclass(frozen=True)
class ReaderRecord:
    """A reader as the dashboard lists them: enough to tell them apart."""

    info: SubscriberInfo
    created_at: datetime
    confirmed_at: datetime | None
    hard_bounces: int

    @classmethod
    def of(cls, subscriber: Subscriber) -> ReaderRecord:
        return cls(
            SubscriberInfo.of(subscriber),
            subscriber.created_at,
            subscriber.confirmed_at,
            subscriber.hard_bounces,
        )


def find_readers(context: Runtime, fragment: str) -> list[ReaderRecord]:
    """Readers whose address contains `fragment`; nobody for an empty search."""
    fragment = fragment.strip()
    if not fragment:
        return []
    with db.transaction(context.sessions) as session:
        found = audience.find_by_email(session, fragment, SEARCH_LIMIT)
        return [ReaderRecord.of(s) for s in found]


def get_reader(context: Runtime, subscriber_id: int) -> ReaderRecord:
    with db.transaction(context.sessions) as session:
        subscriber = subscriber_store.get_subscriber_by_id(session, subscriber_id)
        if subscriber is None:
            raise NotFound(f"no reader with id {subscriber_id}")
        return ReaderRecord.of(subscriber)


def export_reader(context: Runtime, subscriber_id: int) -> dict[str, Any]:
    """Everything stored about one reader, as JSON-ready values (times in ISO 8601)."""
    with db.transaction(context.sessions) as session:
        s = subscriber_store.get_subscriber_by_id(session, subscriber_id)
        if s is None:
            raise NotFound(f"no reader with id {subscriber_id}")
        profile = {
            "id": s.id,
            "email": s.email,
            "status": s.status,
            "timezone": s.timezone,
            "paused": s.paused,
            "hard_bounces": s.hard_bounces,
            "created_at": s.created_at,
            "confirmation_sent_at": s.confirmation_sent_at,
            "confirmed_at": s.confirmed_at,
            "unsubscribed_at": s.unsubscribed_at,
            "bounced_at": s.bounced_at,
        }
        topics, interests = list(s.topic_slugs), list(s.interest_texts)
        papers = [asdict(p) for p in examples_store.felt_papers(session, subscriber_id)]
        deliveries = [asdict(d) for d in reader_data.deliveries_of(session, subscriber_id)]
        events = [asdict(e) for e in reader_data.events_of(session, subscriber_id)]
    exported: dict[str, Any] = _jsonable(
        {
            "profile": profile,
            "topics": topics,
            "interests": interests,
            "example_papers": papers,
            "deliveries": deliveries,
            "mail_events": events,
        }
    )
    return exported


def delete_reader(context: Runtime, subscriber_id: int) -> dict[str, int]:
    """Erase the reader and their history; rows deleted per table."""
    with db.transaction(context.sessions, immediate=True) as session:
        counts = subscriber_store.delete_subscriber(session, subscriber_id)
    if counts is None:
        raise NotFound(f"no reader with id {subscriber_id}")
    return counts


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value
