"""Subscribers, their topics and free-text interests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from types import EllipsisType
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, delete, func, or_, select, update
from sqlalchemy.orm import Session

from newsletter.errors import NewsletterError
from newsletter.store.bulk import insert_new_rows, insert_rows, where_in
from newsletter.store.models import (
    Delivery,
    DeliveryAttempt,
    DeliveryPaper,
    InboundMessage,
    MailEvent,
    ReaderPaper,
    Subscriber,
    SubscriberInterest,
    SubscriberTopic,
    utcnow,
)
from newsletter.store.statuses import SubscriberStatus


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
    query = select(func.count()).where(
        Subscriber.status == SubscriberStatus.ACTIVE, Subscriber.paused.is_(False)
    )
    return int(session.scalar(query) or 0)


def readers_choices(session: Session) -> tuple[list[str], list[str]]:
    """The distinct topic slugs and typed interests of the readers to mail (active and
    not paused): what planning ranks, so what must be embedded first."""
    mailed = (Subscriber.status == SubscriberStatus.ACTIVE, Subscriber.paused.is_(False))
    topic, text = SubscriberTopic.topic, SubscriberInterest.text
    topics = select(topic).distinct().join(Subscriber).where(*mailed).order_by(topic)
    texts = select(text).distinct().join(Subscriber).where(*mailed).order_by(text)
    return list(session.scalars(topics)), list(session.scalars(texts))


def delete_subscriber(session: Session, subscriber_id: int) -> dict[str, int] | None:
    """Erase a reader and everything recorded about them (a GDPR erasure request):
    topics, interests, paper marks, deliveries with their papers and attempts, mail
    events, and inbound mail sent from their address. Returns the rows deleted per
    table; None when there is no such reader.

    Explicit deletes, although the schema cascades from the reader (every connection
    turns SQLite's foreign keys on): they count what was erased table by table, and
    they reach what no key ties to the reader (inbound mail from their address).
    """
    email = session.scalar(select(Subscriber.email).where(Subscriber.id == subscriber_id))
    if email is None:
        return None
    theirs = select(Delivery.id).where(Delivery.subscriber_id == subscriber_id)
    statements = {
        "delivery_attempts": delete(DeliveryAttempt).where(DeliveryAttempt.delivery_id.in_(theirs)),
        "delivery_papers": delete(DeliveryPaper).where(
            DeliveryPaper.subscriber_id == subscriber_id
        ),
        "mail_events": delete(MailEvent).where(
            or_(MailEvent.subscriber_id == subscriber_id, MailEvent.delivery_id.in_(theirs))
        ),
        "deliveries": delete(Delivery).where(Delivery.subscriber_id == subscriber_id),
        "reader_papers": delete(ReaderPaper).where(ReaderPaper.subscriber_id == subscriber_id),
        "subscriber_interests": delete(SubscriberInterest).where(
            SubscriberInterest.subscriber_id == subscriber_id
        ),
        "subscriber_topics": delete(SubscriberTopic).where(
            SubscriberTopic.subscriber_id == subscriber_id
        ),
        "inbound_messages": delete(InboundMessage).where(
            func.lower(InboundMessage.mail_from) == email.lower()
        ),
        "subscribers": delete(Subscriber).where(Subscriber.id == subscriber_id),
    }
    counts = {}
    for table, statement in statements.items():
        result = session.execute(statement.execution_options(synchronize_session=False))
        counts[table] = int(result.rowcount)  # type: ignore[attr-defined]
    session.expunge_all()  # the deleted reader must not linger in the identity map
    return counts


def add_subscriber(
    session: Session,
    email: str,
    *,
    status: str = SubscriberStatus.PENDING,
    topics: Iterable[str] = (),
    interests: Iterable[str] = (),
    timezone: str | None = None,
    now: datetime | None = None,
) -> Subscriber:
    now = now or utcnow()
    subscriber = Subscriber(email=email, status=status, timezone=timezone, created_at=now)
    if status == SubscriberStatus.ACTIVE:
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


def update_subscriber(
    session: Session,
    subscriber: Subscriber,
    *,
    choices: tuple[Iterable[str], Iterable[str]] | None = None,
    timezone: str | EllipsisType | None = ...,
    paused: bool | None = None,
) -> None:
    """Change what is given: topics and typed interests (see set_interests), the time
    zone (None clears it; ... leaves it) and the pause."""
    if choices is not None:
        set_interests(subscriber, *choices)
    if not isinstance(timezone, EllipsisType):
        subscriber.timezone = timezone
    if paused is not None:
        subscriber.paused = paused
    session.flush()


def set_status(subscriber: Subscriber, status: str, now: datetime | None = None) -> None:
    now = now or utcnow()
    subscriber.status = status
    if status == SubscriberStatus.ACTIVE:
        subscriber.confirmed_at = subscriber.confirmed_at or now
        subscriber.unsubscribed_at = None
    elif status == SubscriberStatus.UNSUBSCRIBED:
        subscriber.unsubscribed_at = now
    elif status == SubscriberStatus.BOUNCED:
        subscriber.bounced_at = now


def delete_pending_before(session: Session, cutoff: datetime) -> int:
    """Delete subscriptions still pending that were neither created nor sent a
    confirmation since `cutoff`. A returning reader (confirmed once, pending again)
    keeps their history."""
    stale = and_(
        Subscriber.status == SubscriberStatus.PENDING,
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
                Subscriber.status == SubscriberStatus.PENDING,
                Subscriber.confirmation_sent_at.is_(None),
                Subscriber.hard_bounces == 0,
                or_(Subscriber.created_at >= since, Subscriber.confirmed_at.is_not(None)),
            )
        )
        .order_by(Subscriber.id)
        .limit(limit)
    )
    return session.scalars(query).all()


# --- imports in bulk: Core statements, a few per chunk of rows ------------------------

_CHUNK = 500  # stays under every backend's bound-parameter limit

Choices = tuple[Sequence[str], Sequence[str] | None]  # topic slugs; typed texts (None: keep)


def ids_by_email(session: Session, emails: Sequence[str]) -> dict[str, int]:
    """The ids of the subscribers with these (normalized) addresses, by address."""
    found: dict[str, int] = {}
    for condition in where_in(session, _table(Subscriber).c.email, emails):
        query = select(Subscriber.email, Subscriber.id).where(condition)
        found.update((email, subscriber_id) for email, subscriber_id in session.execute(query))
    return found


_NEW_SUBSCRIBER_COLUMNS = (
    "email",
    "status",
    "timezone",
    "paused",
    "hard_bounces",
    "created_at",
    "confirmed_at",
)


def add_active_subscribers(
    session: Session, readers: Mapping[str, Choices], now: datetime
) -> dict[str, int]:
    """Insert these new addresses as active (confirmed now) with their topics and typed
    interests, as `add_subscriber` would one by one; returns their ids by address."""
    rows = [(email, SubscriberStatus.ACTIVE, None, False, 0, now, now) for email in readers]
    created = insert_new_rows(
        session,
        _table(Subscriber),
        _NEW_SUBSCRIBER_COLUMNS,
        rows,
        unique=("email",),
        returning=("email", "id"),
    )
    ids: dict[str, int] = dict(created)
    if len(ids) < len(readers):  # another writer added one of them meanwhile
        taken = next(email for email in readers if email not in ids)
        raise NewsletterError(f"{taken} was subscribed while importing; import again")
    _add_choices(
        session,
        [(ids[email], topic) for email, (topics, _) in readers.items() for topic in topics],
        [(ids[email], text) for email, (_, texts) in readers.items() for text in texts or ()],
    )
    return ids


def replace_choices(session: Session, choices: Mapping[int, Choices]) -> None:
    """Give these subscribers (by id) these topics and, unless None, these typed
    interests, as `set_interests` does: rows that stay are kept, so typed interests
    keep their order (those kept first, then the new ones as given)."""
    ids = list(choices)
    topics, texts = _choices_by_id(session, ids)
    drop_topics: list[tuple[int, str]] = []
    add_topics: list[tuple[int, str]] = []
    drop_texts: list[int] = []
    add_texts: list[tuple[int, str]] = []
    for subscriber_id, (wanted_topics, wanted_texts) in choices.items():
        had = topics.get(subscriber_id, [])
        drop_topics += [(subscriber_id, t) for t in had if t not in wanted_topics]
        add_topics += [(subscriber_id, t) for t in dict.fromkeys(wanted_topics) if t not in had]
        if wanted_texts is None:
            continue
        typed = texts.get(subscriber_id, [])
        kept = {text for _, text in typed}
        drop_texts += [row_id for row_id, text in typed if text not in wanted_texts]
        add_texts += [(subscriber_id, t) for t in dict.fromkeys(wanted_texts) if t not in kept]
    _drop_choices(session, drop_topics, drop_texts)
    _add_choices(session, add_topics, add_texts)


def _choices_by_id(
    session: Session, ids: Sequence[int]
) -> tuple[dict[int, list[str]], dict[int, list[tuple[int, str]]]]:
    topics: dict[int, list[str]] = {}
    texts: dict[int, list[tuple[int, str]]] = {}
    topic, typed = _table(SubscriberTopic).c, _table(SubscriberInterest).c
    for condition in where_in(session, topic.subscriber_id, ids):
        query = select(topic.subscriber_id, topic.topic).where(condition)
        for subscriber_id, slug in session.execute(query):
            topics.setdefault(subscriber_id, []).append(slug)
    for condition in where_in(session, typed.subscriber_id, ids):
        query_texts = select(typed.subscriber_id, typed.id, typed.text).where(condition)
        for subscriber_id, row_id, text in session.execute(query_texts.order_by(typed.id)):
            texts.setdefault(subscriber_id, []).append((row_id, text))
    return topics, texts


def _drop_choices(
    session: Session, topics: Sequence[tuple[int, str]], texts: Sequence[int]
) -> None:
    topic, typed = _table(SubscriberTopic).c, _table(SubscriberInterest).c
    if topics:
        statement = delete(_table(SubscriberTopic)).where(
            topic.subscriber_id == bindparam("s"), topic.topic == bindparam("t")
        )
        session.connection().execute(statement, [{"s": s, "t": t} for s, t in topics])
    for start in range(0, len(texts), _CHUNK):
        chunk = texts[start : start + _CHUNK]
        session.execute(delete(_table(SubscriberInterest)).where(typed.id.in_(chunk)))


def _add_choices(
    session: Session, topics: Sequence[tuple[int, str]], texts: Sequence[tuple[int, str]]
) -> None:
    """Insert topic and typed-interest rows; texts in the order given (their ids order
    a reader's interests)."""
    insert_rows(session, _table(SubscriberTopic), ("subscriber_id", "topic"), topics)
    insert_rows(session, _table(SubscriberInterest), ("subscriber_id", "text"), texts)


def _table(model: Any) -> Table:
    return cast(Table, model.__table__)
