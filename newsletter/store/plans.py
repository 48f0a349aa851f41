"""Planning as the database keeps it: the readers to plan for (with their choices and
marked papers), the papers each was already sent, and the planned deliveries with their
papers, inserted in bulk.

Idempotency lives in the schema (unique edition + subscriber, unique subscriber +
paper): inserts skip conflicts, so a plan run twice, or by two planners at once, adds
each row once and never gives a reader a paper twice.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import (
    ColumnElement,
    Select,
    literal,
    select,
    union_all,
)
from sqlalchemy.orm import Session

from newsletter.store.bulk import ID_CHUNK, insert_new_rows, insert_rows_once, table_of
from newsletter.store.examples import feelings_of
from newsletter.store.models import (
    Delivery,
    DeliveryPaper,
    Paper,
    Subscriber,
    SubscriberInterest,
    SubscriberTopic,
)
from newsletter.store.statuses import DeliveryStatus, SubscriberStatus


@dataclass(frozen=True, slots=True)
class PlanReader:
    """A reader to plan for, as plain values: what choosing papers and timing need."""

    id: int
    topics: tuple[str, ...]
    interests: tuple[str, ...]
    timezone: str | None = None
    likes: tuple[int, ...] = ()  # example papers ("papers like these", "more like this")
    fewer: tuple[int, ...] = ()  # papers marked "fewer like this"


class PlannedPaper(NamedTuple):
    """A planned paper. A named tuple, not a dataclass: a plan makes and a send reads
    hundreds of thousands, and tuples are built and hashed in C."""

    paper_id: int
    score: float
    reason: str


@dataclass(frozen=True)
class PlannedDelivery:
    subscriber_id: int
    kind: str  # digest | quiet
    next_attempt_at: datetime
    papers: tuple[PlannedPaper, ...]


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
        Subscriber.status == SubscriberStatus.ACTIVE,
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
    felt = feelings_of(session, select(Subscriber.id).where(*to_plan))
    nothing: tuple[list[str], list[str]] = ([], [])
    return [
        PlanReader(
            subscriber_id, tuple(topics), tuple(texts), timezone, *felt.get(subscriber_id, ((), ()))
        )
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
    for start in range(0, len(paper_ids), ID_CHUNK):
        chunk = paper_ids[start : start + ID_CHUNK]
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
_PLAN_CHUNK = 5_000  # deliveries per statement


def insert_deliveries(
    session: Session, edition_id: int, planned: Sequence[PlannedDelivery], now: datetime
) -> int:
    """Create the deliveries (and their papers) that do not exist yet; returns how many."""
    by_subscriber = {p.subscriber_id: p for p in planned}
    created: list[tuple[int, PlannedDelivery]] = []
    for start in range(0, len(planned), _PLAN_CHUNK):
        rows = [
            (edition_id, p.subscriber_id, p.kind, DeliveryStatus.QUEUED, 0, p.next_attempt_at, now)
            for p in planned[start : start + _PLAN_CHUNK]
        ]
        # ON CONFLICT DO NOTHING RETURNING: only rows this call created come back, so
        # a concurrent planner's deliveries never get a second set of papers.
        new = insert_new_rows(
            session,
            table_of(Delivery),
            _DELIVERY_COLUMNS,
            rows,
            unique=("edition_id", "subscriber_id"),
            returning=("id", "subscriber_id"),
        )
        created.extend((d_id, by_subscriber[s_id]) for d_id, s_id in new)
    _insert_delivery_papers(session, created)
    return len(created)


_PAPER_COLUMNS = ("delivery_id", "paper_id", "subscriber_id", "position", "score", "reason")


def _insert_delivery_papers(
    session: Session, deliveries: Sequence[tuple[int, PlannedDelivery]]
) -> None:
    """The papers of deliveries just created. The papers were chosen leaving out those
    each reader had been sent, so only a concurrent plan of another edition can have
    taken one since: the unique key leaves it out, and the reader still gets it once."""

    def rows() -> Iterator[tuple[object, ...]]:
        for delivery_id, plan in deliveries:
            for position, paper in enumerate(plan.papers, start=1):
                yield (
                    delivery_id,
                    paper.paper_id,
                    plan.subscriber_id,
                    position,
                    float(paper.score),
                    paper.reason[:200],
                )

    insert_rows_once(session, table_of(DeliveryPaper), _PAPER_COLUMNS, rows)


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
    for start in range(0, len(delivery_ids), ID_CHUNK):
        chunk = delivery_ids[start : start + ID_CHUNK]
        query = (
            select(table.delivery_id, table.paper_id, table.score, table.reason)
            .where(table.delivery_id.in_(chunk))
            .order_by(table.delivery_id, table.position)
        )
        for delivery_id, paper_id, score, reason in session.execute(query):
            found[delivery_id].append(PlannedPaper(paper_id, score, reason))
    return found


def interests_of(
    session: Session, subscriber_ids: Sequence[int]
) -> dict[int, tuple[list[str], list[str]]]:
    """Each subscriber's (topic slugs, free-text interests), in one query per table."""
    found: dict[int, tuple[list[str], list[str]]] = {s: ([], []) for s in subscriber_ids}
    for start in range(0, len(subscriber_ids), ID_CHUNK):
        chunk = subscriber_ids[start : start + ID_CHUNK]
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


def sent_titles(session: Session) -> list[tuple[str, str]]:
    """(reader's address, paper title) of every paper sent, by reader, in email order."""
    query = (
        select(Subscriber.email, Paper.title)
        .join(Delivery, Delivery.subscriber_id == Subscriber.id)
        .join(DeliveryPaper, DeliveryPaper.delivery_id == Delivery.id)
        .join(Paper, Paper.id == DeliveryPaper.paper_id)
        .where(Delivery.status == DeliveryStatus.SENT)
        .order_by(Subscriber.email, DeliveryPaper.position)
    )
    return [(str(email), str(title)) for email, title in session.execute(query)]
