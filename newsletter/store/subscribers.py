"""Subscribers, their topics and free-text interests."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from newsletter.models import Subscriber, SubscriberInterest, SubscriberTopic, utcnow


def get_subscriber(session: Session, email: str) -> Subscriber | None:
    """Look up by the normalized address (see addresses.normalize_email)."""
    return session.scalar(select(Subscriber).where(Subscriber.email == email))


def get_subscriber_by_id(session: Session, subscriber_id: int) -> Subscriber | None:
    return session.get(Subscriber, subscriber_id)


def list_subscribers(session: Session, status: str | None = None) -> Sequence[Subscriber]:
    query = select(Subscriber).order_by(Subscriber.email)
    if status is not None:
        query = query.where(Subscriber.status == status)
    return session.scalars(query).all()


def count_readers_to_mail(session: Session) -> int:
    """Active readers who have not paused their digest."""
    query = select(func.count()).where(Subscriber.status == "active", Subscriber.paused.is_(False))
    return int(session.scalar(query) or 0)


def readers_choices(session: Session) -> tuple[list[str], list[str]]:
    """The distinct topic slugs and typed interests of the readers to mail (active and
    not paused): what planning ranks, so what must be embedded first."""
    mailed = (Subscriber.status == "active", Subscriber.paused.is_(False))
    topic, text = SubscriberTopic.topic, SubscriberInterest.text
    topics = select(topic).distinct().join(Subscriber).where(*mailed).order_by(topic)
    texts = select(text).distinct().join(Subscriber).where(*mailed).order_by(text)
    return list(session.scalars(topics)), list(session.scalars(texts))


def add_subscriber(
    session: Session,
    email: str,
    *,
    status: str = "pending",
    topics: Iterable[str] = (),
    interests: Iterable[str] = (),
    timezone: str | None = None,
    now: datetime | None = None,
) -> Subscriber:
    now = now or utcnow()
    subscriber = Subscriber(email=email, status=status, timezone=timezone, created_at=now)
    if status == "active":
        subscriber.confirmed_at = now
    session.add(subscriber)
    set_interests(subscriber, topics, interests)
    session.flush()
    return subscriber


def set_interests(subscriber: Subscriber, topics: Iterable[str], interests: Iterable[str]) -> None:
    """Replace a subscriber's topics and free-text interests (duplicates collapse).

    Rows that stay are kept rather than deleted and inserted again: the unit of work
    inserts before it deletes, which would trip the uniqueness constraints.
    """
    kept_topics = {t.topic: t for t in subscriber.topics}
    subscriber.topics = [
        kept_topics.get(t) or SubscriberTopic(topic=t) for t in dict.fromkeys(topics)
    ]
    kept_texts = {i.text: i for i in subscriber.interests}
    subscriber.interests = [
        kept_texts.get(t) or SubscriberInterest(text=t) for t in dict.fromkeys(interests)
    ]


def set_status(subscriber: Subscriber, status: str, now: datetime | None = None) -> None:
    now = now or utcnow()
    subscriber.status = status
    if status == "active":
        subscriber.confirmed_at = subscriber.confirmed_at or now
        subscriber.unsubscribed_at = None
    elif status == "unsubscribed":
        subscriber.unsubscribed_at = now
    elif status == "bounced":
        subscriber.bounced_at = now


def mark_confirmation_sent(session: Session, subscriber_id: int, now: datetime) -> None:
    session.execute(
        update(Subscriber).where(Subscriber.id == subscriber_id).values(confirmation_sent_at=now)
    )


def claim_confirmation(
    session: Session, subscriber_id: int, now: datetime, cooldown: timedelta
) -> bool:
    """Take the right to send a confirmation email now: at most one per cooldown.

    A conditional UPDATE, so two requests racing for the same address (on any backend)
    cannot both win.
    """
    statement = (
        update(Subscriber)
        .where(
            Subscriber.id == subscriber_id,
            or_(
                Subscriber.confirmation_sent_at.is_(None),
                Subscriber.confirmation_sent_at <= now - cooldown,
            ),
        )
        .values(confirmation_sent_at=now)
        .returning(Subscriber.id)
    )
    return session.execute(statement).first() is not None


def release_confirmation(
    session: Session, subscriber_id: int, claimed_at: datetime, *, refused: bool = False
) -> bool:
    """Give back a claim whose email the relay did not take, so the cooldown counts only
    confirmations that went out and the next request (or the drain) tries again.

    Conditional on the claim still being ours: a newer one is left alone. `refused`
    (the relay said no for good) counts a hard bounce, which keeps the drain from
    retrying that address; the reader may still ask again.
    """
    values: dict[str, object] = {"confirmation_sent_at": None}
    if refused:
        values["hard_bounces"] = Subscriber.hard_bounces + 1
    statement = (
        update(Subscriber)
        .where(Subscriber.id == subscriber_id, Subscriber.confirmation_sent_at == claimed_at)
        .values(values)
        .returning(Subscriber.id)
    )
    return session.execute(statement).first() is not None


def owed_confirmations(session: Session, since: datetime, limit: int) -> Sequence[Subscriber]:
    """Pending readers whose confirmation never went out (the relay was down, or said
    try later), oldest first: new ones asked since `since` (older ones are purged) and
    returning readers, who are never purged."""
    query = (
        select(Subscriber)
        .where(
            and_(
                Subscriber.status == "pending",
                Subscriber.confirmation_sent_at.is_(None),
                Subscriber.hard_bounces == 0,
                or_(Subscriber.created_at >= since, Subscriber.confirmed_at.is_not(None)),
            )
        )
        .order_by(Subscriber.id)
        .limit(limit)
    )
    return session.scalars(query).all()
