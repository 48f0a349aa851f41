"""Editions, deliveries and attempts: the outbox as the database keeps it.

Idempotency lives in the schema (unique edition key, unique edition + subscriber,
unique subscriber + paper); inserts here use ON CONFLICT DO NOTHING so that two
planners racing each other both succeed and each row exists once. Claims lease rows
so two workers never hold the same delivery: PostgreSQL skips rows another worker has
locked, SQLite runs the claim inside a BEGIN IMMEDIATE transaction (one writer).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Insert,
    Row,
    Select,
    Table,
    Update,
    and_,
    bindparam,
    func,
    insert,
    literal,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from newsletter.models import (
    Delivery,
    DeliveryAttempt,
    DeliveryPaper,
    Edition,
    EditionPaper,
    Subscriber,
    SubscriberInterest,
    SubscriberTopic,
)
from newsletter.store.bulk import insert_new_rows, insert_rows

_CHUNK = 500  # stays under every backend's bound-parameter limit
OPEN_STATUSES = ("queued", "sending")


@dataclass(frozen=True)
class EditionInfo:
    id: int
    key: str
    window_start: datetime
    window_end: datetime
    scheduled_for: datetime
    status: str
    paused_reason: str | None

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
        )


@dataclass(frozen=True, slots=True)
class PlanReader:
    """A reader to plan for, as plain values: what choosing papers and timing need."""

    id: int
    topics: tuple[str, ...]
    interests: tuple[str, ...]
    timezone: str | None = None


@dataclass(frozen=True)
class PlannedPaper:
    paper_id: int
    score: float
    reason: str


@dataclass(frozen=True)
class PlannedDelivery:
    subscriber_id: int
    kind: str  # digest | quiet
    next_attempt_at: datetime
    papers: tuple[PlannedPaper, ...]


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


def _table(model: Any) -> Table:
    """A mapped class's table, for plain Core statements (no ORM bookkeeping)."""
    return cast(Table, model.__table__)


def _insert(session: Session, table: Any) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that can say ON CONFLICT DO NOTHING on this backend."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


# --- editions -------------------------------------------------------------------------


def ensure_edition(
    session: Session,
    key: str,
    window_start: datetime,
    window_end: datetime,
    scheduled_for: datetime,
) -> tuple[EditionInfo, bool]:
    """The edition with this key, created if missing; True when this call created it."""
    statement = _insert(session, Edition).values(
        key=key,
        window_start=window_start,
        window_end=window_end,
        scheduled_for=scheduled_for,
        status="sending",
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
        session.execute(_insert(session, EditionPaper).on_conflict_do_nothing(), rows)


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
        .where(Edition.id == edition_id, Edition.status == "sending")
        .values(status="paused", paused_reason=reason)
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
        .where(Edition.id == edition_id, Edition.status != "sending")
        .values(
            status="sending",
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
    if _any_open(session, edition_id) or not has_deliveries(session, edition_id):
        return False
    result = session.execute(
        update(Edition)
        .where(Edition.id == edition_id, Edition.status == "sending")
        .values(status="done", completed_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


# --- planning -------------------------------------------------------------------------


def subscribers_to_plan(
    session: Session, edition_id: int, email: str | None = None
) -> list[PlanReader]:
    """Active, unpaused subscribers without a delivery in this edition yet, by id, with
    their topics (by slug) and typed interests (in the order typed).

    Plain rows, not ORM objects: two queries whatever the number of readers, one for
    the readers and one for what they chose.
    """
    planned = select(Delivery.subscriber_id).where(Delivery.edition_id == edition_id)
    to_plan = [
        Subscriber.status == "active",
        Subscriber.paused.is_(False),
        Subscriber.id.not_in(planned),
    ]
    if email is not None:
        to_plan.append(Subscriber.email == email)
    chosen: dict[int, tuple[list[str], list[str]]] = {}
    for subscriber_id, kind, value in session.execute(_choices_of(to_plan)):
        lists = chosen.get(subscriber_id)
        if lists is None:
            lists = chosen[subscriber_id] = ([], [])
        lists[kind].append(value)
    readers = select(Subscriber.id, Subscriber.timezone).where(*to_plan).order_by(Subscriber.id)
    nothing: tuple[list[str], list[str]] = ([], [])
    return [
        PlanReader(subscriber_id, tuple(topics), tuple(texts), timezone)
        for subscriber_id, timezone in session.execute(readers)
        for topics, texts in (chosen.get(subscriber_id, nothing),)
    ]


def _choices_of(readers: Sequence[ColumnElement[bool]]) -> Select[int, int, str]:
    """(subscriber id, 0 and a topic slug | 1 and a typed text) of the matching readers,
    topics by slug then texts in the order typed, as the ORM relationships order them."""
    topic = SubscriberTopic.__table__.c
    typed = SubscriberInterest.__table__.c
    topics = (
        select(
            topic.subscriber_id,
            literal(0).label("kind"),
            literal(0).label("position"),
            topic.topic.label("value"),
        )
        .join(Subscriber, Subscriber.id == topic.subscriber_id)
        .where(*readers)
    )
    texts = (
        select(typed.subscriber_id, literal(1), typed.id, typed.text)
        .join(Subscriber, Subscriber.id == typed.subscriber_id)
        .where(*readers)
    )
    both = union_all(topics, texts).subquery()
    return select(both.c.subscriber_id, both.c.kind, both.c.value).order_by(
        both.c.subscriber_id, both.c.kind, both.c.position, both.c.value
    )


def delivered_papers(session: Session, paper_ids: Sequence[int]) -> dict[int, set[int]]:
    """For these papers: which ones each subscriber has already been sent (or planned)."""
    found: dict[int, set[int]] = {}
    for start in range(0, len(paper_ids), _CHUNK):
        chunk = paper_ids[start : start + _CHUNK]
        query = select(DeliveryPaper.subscriber_id, DeliveryPaper.paper_id).where(
            DeliveryPaper.paper_id.in_(chunk)
        )
        for subscriber_id, paper_id in session.execute(query):
            found.setdefault(subscriber_id, set()).add(paper_id)
    return found


_DELIVERY_COLUMNS = (
    "edition_id",
    "subscriber_id",
    "kind",
    "status",
    "attempts",
    "next_attempt_at",
    "created_at",
)
_PLAN_CHUNK = 5_000  # deliveries per round: their papers are ~10 rows each


def insert_deliveries(
    session: Session, edition_id: int, planned: Sequence[PlannedDelivery], now: datetime
) -> int:
    """Create the deliveries (and their papers) that do not exist yet; returns how many."""
    by_subscriber = {p.subscriber_id: p for p in planned}
    created = 0
    for start in range(0, len(planned), _PLAN_CHUNK):
        rows = [
            (edition_id, p.subscriber_id, p.kind, "queued", 0, p.next_attempt_at, now)
            for p in planned[start : start + _PLAN_CHUNK]
        ]
        # ON CONFLICT DO NOTHING RETURNING: only rows this call created come back, so
        # a concurrent planner's deliveries never get a second set of papers.
        new = insert_new_rows(
            session,
            _table(Delivery),
            _DELIVERY_COLUMNS,
            rows,
            unique=("edition_id", "subscriber_id"),
            returning=("id", "subscriber_id"),
        )
        created += len(new)
        _insert_delivery_papers(session, [(d_id, by_subscriber[s_id]) for d_id, s_id in new])
    return created


_PAPER_COLUMNS = ("delivery_id", "paper_id", "subscriber_id", "position", "score", "reason")


def _insert_delivery_papers(
    session: Session, deliveries: Iterable[tuple[int, PlannedDelivery]]
) -> None:
    rows = [
        (
            delivery_id,
            paper.paper_id,
            plan.subscriber_id,
            position,
            float(paper.score),
            paper.reason[:200],
        )
        for delivery_id, plan in deliveries
        for position, paper in enumerate(plan.papers, start=1)
    ]
    insert_rows(session, _table(DeliveryPaper), _PAPER_COLUMNS, rows, skip_conflicts=True)


def delivery_for(session: Session, edition_id: int, subscriber_id: int) -> Delivery | None:
    return session.scalar(
        select(Delivery).where(
            Delivery.edition_id == edition_id, Delivery.subscriber_id == subscriber_id
        )
    )


def planned_papers(session: Session, delivery_ids: Sequence[int]) -> dict[int, list[PlannedPaper]]:
    """Each delivery's papers in their planned order, as plain values (no ORM objects)."""
    found: dict[int, list[PlannedPaper]] = {d: [] for d in delivery_ids}
    table = DeliveryPaper.__table__.c
    for start in range(0, len(delivery_ids), _CHUNK):
        chunk = delivery_ids[start : start + _CHUNK]
        query = (
            select(table.delivery_id, table.paper_id, table.score, table.reason)
            .where(table.delivery_id.in_(chunk))
            .order_by(table.delivery_id, table.position)
        )
        for delivery_id, paper_id, score, reason in session.execute(query):
            found[delivery_id].append(PlannedPaper(paper_id, score, reason))
    return found


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
        and_(Delivery.status == "queued", queued_due),
        and_(Delivery.status == "sending", Delivery.leased_until < now),
    )
    sending = select(Edition.id).where(Edition.status == "sending")
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
        if r.status == "active" and not r.paused
    ]
    skipped = [r.id for r in rows if r.status != "active" or r.paused]
    lease_until = now + timedelta(seconds=lease_seconds)
    for start in range(0, len(claimed), _CHUNK):
        ids = [c.id for c in claimed[start : start + _CHUNK]]
        # By id alone: the rows were read in this transaction, which holds them (the
        # write lock on SQLite, FOR UPDATE elsewhere). A status test here would lead
        # SQLite to scan the status index over every open delivery instead.
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(ids))
            .values(status="sending", lease_owner=owner, leased_until=lease_until)
        )
    for start in range(0, len(skipped), _CHUNK):
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(skipped[start : start + _CHUNK]))
            .values(status="skipped", lease_owner=None, leased_until=None)
        )
    return claimed, len(skipped)


def release(session: Session, owner: str, delivery_ids: Sequence[int]) -> None:
    """Give leased deliveries back untouched (a worker stopping before sending them)."""
    for start in range(0, len(delivery_ids), _CHUNK):
        session.execute(
            update(Delivery)
            .where(
                Delivery.id.in_(delivery_ids[start : start + _CHUNK]),
                Delivery.lease_owner == owner,
                Delivery.status == "sending",
            )
            .values(status="queued", lease_owner=None, leased_until=None)
        )


def skip_claimed(session: Session, owner: str, delivery_id: int) -> None:
    """A leased delivery whose reader left before it went out: never sent."""
    session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.lease_owner == owner)
        .values(status="skipped", lease_owner=None, leased_until=None)
    )


def readers_left_since(session: Session, since: datetime) -> set[int]:
    """Readers who unsubscribed or bounced at `since` or later (checked at send time)."""
    left_at = func.coalesce(Subscriber.unsubscribed_at, Subscriber.bounced_at)
    query = select(Subscriber.id).where(
        Subscriber.status.in_(("unsubscribed", "bounced")), left_at >= since
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
        .where(Delivery.status == "sending", Delivery.leased_until >= now)
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
        .where(Delivery.status == "sending", Delivery.lease_owner.in_(owners))
        .values(status="queued", lease_owner=None, leased_until=None)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def _attempt(
    session: Session,
    delivery: ClaimedDelivery,
    now: datetime,
    ok: bool,
    permanent: bool = False,
    error: str | None = None,
) -> None:
    session.execute(
        _insert(session, DeliveryAttempt).values(
            delivery_id=delivery.id,
            edition_id=delivery.edition_id,
            at=now,
            ok=ok,
            permanent=permanent,
            error=error,
        )
    )


@dataclass(frozen=True)
class SentMark:
    """A delivery the server accepted (250), waiting to be recorded."""

    delivery: ClaimedDelivery
    message_id: str
    at: datetime


@cache
def _sent_statements() -> tuple[Update, Insert]:
    """Built once: constructing a statement costs more than running it on SQLite."""
    deliveries = _table(Delivery)
    mark = (
        update(deliveries)
        .where(deliveries.c.id == bindparam("b_id"))
        .values(
            status="sent",
            message_id=bindparam("b_message_id"),
            sent_at=bindparam("b_at", type_=deliveries.c.sent_at.type),
            attempts=deliveries.c.attempts + 1,
            last_error=None,
            lease_owner=None,
            leased_until=None,
        )
    )
    return mark, insert(_table(DeliveryAttempt))


def mark_sent_many(connection: Connection, marks: Sequence[SentMark]) -> None:
    """Mark deliveries sent (message id, time, an ok attempt) in few statements; the
    caller commits once.

    Plain Core statements executed with many parameter sets: the per-message cost of
    recording stays far below the cost of composing the message.
    """
    if not marks:
        return
    mark, attempt = _sent_statements()
    connection.execute(
        mark,
        [{"b_id": m.delivery.id, "b_message_id": m.message_id, "b_at": m.at} for m in marks],
    )
    connection.execute(
        attempt,
        [
            {
                "delivery_id": m.delivery.id,
                "edition_id": m.delivery.edition_id,
                "at": m.at,
                "ok": True,
                "permanent": False,
                "error": None,
            }
            for m in marks
        ],
    )
    recovered = [m.delivery.subscriber_id for m in marks if m.delivery.hard_bounces]
    if recovered:  # a success ends a run of hard bounces
        subscribers = _table(Subscriber)
        connection.execute(
            update(subscribers).where(subscribers.c.id.in_(recovered)).values(hard_bounces=0)
        )


def mark_retry(
    session: Session,
    delivery: ClaimedDelivery,
    owner: str,
    error: str,
    retry_at: datetime,
    now: datetime,
) -> None:
    _end_attempt(
        session, delivery, owner, status="queued", next_attempt_at=retry_at, last_error=error
    )
    _attempt(session, delivery, now, ok=False, error=error)


def mark_failed(
    session: Session,
    delivery: ClaimedDelivery,
    owner: str,
    error: str,
    now: datetime,
    *,
    permanent: bool,
) -> None:
    _end_attempt(session, delivery, owner, status="failed", last_error=error)
    _attempt(session, delivery, now, ok=False, permanent=permanent, error=error)


def _end_attempt(session: Session, delivery: ClaimedDelivery, owner: str, **values: object) -> None:
    """Count the attempt and give up the lease (only if it is still this owner's)."""
    session.execute(
        update(Delivery)
        .where(Delivery.id == delivery.id, Delivery.lease_owner == owner)
        .values(attempts=Delivery.attempts + 1, lease_owner=None, leased_until=None, **values)
    )


def record_hard_bounce(
    session: Session, subscriber_id: int, bounce_after: int, now: datetime
) -> bool:
    """Count a hard bounce; True when it made the subscriber bounced (never mailed again)."""
    session.execute(
        update(Subscriber)
        .where(Subscriber.id == subscriber_id)
        .values(hard_bounces=Subscriber.hard_bounces + 1)
    )
    result = session.execute(
        update(Subscriber)
        .where(
            Subscriber.id == subscriber_id,
            Subscriber.hard_bounces >= bounce_after,
            Subscriber.status != "bounced",
        )
        .values(status="bounced", bounced_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


# --- reading the state ----------------------------------------------------------------


def failure_share(session: Session, edition_id: int, window: int, scanned: int) -> tuple[int, int]:
    """(failed, total) over the latest outcome of the edition's `window` most recently
    tried deliveries, counting only attempts since the edition was last resumed.

    One delivery retried five times is one reader, not five failures. Only the last
    `scanned` attempts are read (the window times the attempts a delivery may make),
    so the check costs the same however large the edition grows.
    """
    attempts = _table(DeliveryAttempt)
    baseline = (
        select(func.coalesce(Edition.judged_after_attempt, 0))
        .where(Edition.id == edition_id)
        .scalar_subquery()
    )
    recent = (
        select(attempts.c.id, attempts.c.delivery_id)
        .where(attempts.c.edition_id == edition_id, attempts.c.id > baseline)
        .order_by(attempts.c.id.desc())
        .limit(scanned)
        .subquery()
    )
    newest = func.max(recent.c.id)
    latest = (
        select(newest.label("id"))
        .group_by(recent.c.delivery_id)
        .order_by(newest.desc())
        .limit(window)
        .subquery()
    )
    failed, total = session.execute(
        select(func.count().filter(attempts.c.ok.is_(False)), func.count()).select_from(
            attempts.join(latest, attempts.c.id == latest.c.id)
        )
    ).one()
    return int(failed or 0), int(total or 0)


def _any_open(session: Session, edition_id: int) -> bool:
    """Whether anything is left to send: stops at the first open delivery, where a
    count would read them all (this is asked after every batch).

    `edition_id + 0` keeps SQLite off the (edition, subscriber) index, whose walk
    would pass every delivery already sent; the status index holds only open ones.
    """
    query = select(Delivery.id).where(
        Delivery.edition_id + 0 == edition_id, Delivery.status.in_(OPEN_STATUSES)
    )
    return session.scalar(query.limit(1)) is not None


def count_open(session: Session, edition_id: int, subscriber_id: int | None = None) -> int:
    query = select(func.count()).where(
        Delivery.edition_id == edition_id, Delivery.status.in_(OPEN_STATUSES)
    )
    if subscriber_id is not None:
        query = query.where(Delivery.subscriber_id == subscriber_id)
    return int(session.scalar(query) or 0)


def next_wakeup(session: Session, edition_id: int | None) -> datetime | None:
    """The earliest moment an open delivery becomes due (retry time or lease expiry)."""
    queued = select(func.min(Delivery.next_attempt_at)).where(Delivery.status == "queued")
    leased = select(func.min(Delivery.leased_until)).where(Delivery.status == "sending")
    if edition_id is not None:
        queued = queued.where(Delivery.edition_id == edition_id)
        leased = leased.where(Delivery.edition_id == edition_id)
    times = [t for t in (session.scalar(queued), session.scalar(leased)) if t is not None]
    return min(times) if times else None


def retry_backlog(
    session: Session, edition_id: int | None, now: datetime
) -> tuple[int, str | None]:
    """How many deliveries wait for a retry later, and the error of the latest to fail."""
    waiting = (Delivery.status == "queued", Delivery.attempts > 0, Delivery.next_attempt_at > now)
    count = select(func.count()).where(*waiting)
    last = select(Delivery.last_error).where(*waiting)
    last = last.order_by(Delivery.next_attempt_at.desc()).limit(1)
    if edition_id is not None:
        count = count.where(Delivery.edition_id == edition_id)
        last = last.where(Delivery.edition_id == edition_id)
    return int(session.scalar(count) or 0), session.scalar(last)


def interests_of(
    session: Session, subscriber_ids: Sequence[int]
) -> dict[int, tuple[list[str], list[str]]]:
    """Each subscriber's (topic slugs, free-text interests), in one query per table."""
    found: dict[int, tuple[list[str], list[str]]] = {s: ([], []) for s in subscriber_ids}
    for start in range(0, len(subscriber_ids), _CHUNK):
        chunk = subscriber_ids[start : start + _CHUNK]
        topics = select(SubscriberTopic.subscriber_id, SubscriberTopic.topic).where(
            SubscriberTopic.subscriber_id.in_(chunk)
        )
        for subscriber_id, topic in session.execute(topics.order_by(SubscriberTopic.topic)):
            found[subscriber_id][0].append(topic)
        texts = select(SubscriberInterest.subscriber_id, SubscriberInterest.text).where(
            SubscriberInterest.subscriber_id.in_(chunk)
        )
        for subscriber_id, text in session.execute(texts.order_by(SubscriberInterest.id)):
            found[subscriber_id][1].append(text)
    return found


def open_deliveries(
    session: Session, edition_id: int, subscriber_id: int | None = None
) -> list[ClaimedDelivery]:
    """The edition's unsent deliveries to active readers, unleased (dry runs, previews)."""
    query = (
        select(Delivery.id, Delivery.edition_id, Delivery.subscriber_id, Delivery.kind)
        .add_columns(Delivery.attempts, Subscriber.email, Subscriber.hard_bounces)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(
            Delivery.edition_id == edition_id,
            Delivery.status.in_(OPEN_STATUSES),
            Subscriber.status == "active",
        )
        .order_by(Delivery.id)
    )
    if subscriber_id is not None:
        query = query.where(Delivery.subscriber_id == subscriber_id)
    return [
        ClaimedDelivery(
            r.id, r.edition_id, r.subscriber_id, r.email, r.kind, r.attempts, r.hard_bounces
        )
        for r in session.execute(query)
    ]


def previous_window_end(session: Session, key: str) -> datetime | None:
    """Where the window of the latest edition before `key` ended (keys sort by week)."""
    return session.scalar(select(func.max(Edition.window_end)).where(Edition.key < key))
