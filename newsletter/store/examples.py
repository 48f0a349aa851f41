"""The papers readers gave as examples or marked from an email: one row per reader and
paper, its feeling (`like`: more like this, `fewer`: fewer like this) and where it came
from. A later mark replaces an earlier one: the reader changed their mind."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, delete, func, select
from sqlalchemy.orm import Session

from newsletter.store.bulk import insert_or_ignore
from newsletter.store.models import Paper, ReaderPaper
from newsletter.store.statuses import Feeling, Origin


@dataclass(frozen=True)
class FeltPaper:
    paper_id: int
    title: str
    url: str | None
    feeling: Feeling
    origin: Origin
    created_at: datetime


def set_feeling(
    session: Session,
    subscriber_id: int,
    paper_id: int,
    feeling: Feeling,
    origin: Origin,
    now: datetime,
) -> None:
    """Record or replace how a reader feels about a paper."""
    forget_feeling(session, subscriber_id, paper_id)
    values = {
        "subscriber_id": subscriber_id,
        "paper_id": paper_id,
        "feeling": feeling.value,
        "origin": origin.value,
        "created_at": now,
    }
    session.execute(insert_or_ignore(session, ReaderPaper).values(values).on_conflict_do_nothing())


def forget_feeling(session: Session, subscriber_id: int, paper_id: int) -> bool:
    result = session.execute(
        delete(ReaderPaper).where(
            ReaderPaper.subscriber_id == subscriber_id, ReaderPaper.paper_id == paper_id
        )
    )
    return bool(getattr(result, "rowcount", 0))


def feels(session: Session, subscriber_id: int, paper_id: int, feeling: Feeling) -> bool:
    query = select(ReaderPaper.paper_id).where(
        ReaderPaper.subscriber_id == subscriber_id,
        ReaderPaper.paper_id == paper_id,
        ReaderPaper.feeling == feeling.value,
    )
    return session.scalar(query) is not None


def count_likes(session: Session, subscriber_id: int) -> int:
    query = select(func.count()).where(
        ReaderPaper.subscriber_id == subscriber_id, ReaderPaper.feeling == Feeling.LIKE.value
    )
    return int(session.scalar(query) or 0)


def feelings_of(
    session: Session, readers: Select[int]
) -> dict[int, tuple[tuple[int, ...], tuple[int, ...]]]:
    """(liked paper ids, fewer paper ids) of each of `readers` (a query of subscriber
    ids) who marked any, oldest mark first."""
    query = (
        select(ReaderPaper.subscriber_id, ReaderPaper.paper_id, ReaderPaper.feeling)
        .where(ReaderPaper.subscriber_id.in_(readers))
        .order_by(ReaderPaper.subscriber_id, ReaderPaper.created_at, ReaderPaper.paper_id)
    )
    marks: dict[int, tuple[list[int], list[int]]] = {}
    for subscriber_id, paper_id, feeling in session.execute(query):
        likes, fewer = marks.setdefault(subscriber_id, ([], []))
        (likes if feeling == Feeling.LIKE else fewer).append(paper_id)
    return {sid: (tuple(likes), tuple(fewer)) for sid, (likes, fewer) in marks.items()}


def felt_papers(session: Session, subscriber_id: int) -> list[FeltPaper]:
    query = (
        select(
            ReaderPaper.paper_id,
            Paper.title,
            Paper.url,
            ReaderPaper.feeling,
            ReaderPaper.origin,
            ReaderPaper.created_at,
        )
        .join(Paper, Paper.id == ReaderPaper.paper_id)
        .where(ReaderPaper.subscriber_id == subscriber_id)
        .order_by(ReaderPaper.created_at.desc(), ReaderPaper.paper_id)
    )
    return [
        FeltPaper(pid, title, url, Feeling(feeling), Origin(origin), created)
        for pid, title, url, feeling, origin, created in session.execute(query)
    ]
