"""What the public pages show: this week's trending papers and the edition archive.

Loads everything into frozen views inside one short transaction, so templates never
touch the database.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.planning.selection import general_top, paper_view
from newsletter.render.content import TRENDING_REASON, DigestItem, PaperView
from newsletter.runtime import Runtime
from newsletter.store import db
from newsletter.store import editions as edition_store
from newsletter.store import papers as paper_store
from newsletter.store.editions import EditionInfo

EDITION_KEY = re.compile(r"^\d{4}-W\d{2}$")
ARCHIVE_LIMIT = 520  # ten years of weekly editions


@dataclass(frozen=True)
class Trending:
    papers: tuple[PaperView, ...]
    start: datetime | None  # the window shown; None when no paper was ever listed
    end: datetime | None


@dataclass(frozen=True)
class EditionSummary:
    """What the archive pages show of an edition: its weeks and how many papers."""

    key: str
    window_start: datetime
    window_end: datetime
    scheduled_for: datetime
    paper_count: int


@dataclass(frozen=True)
class EditionPage:
    edition: EditionSummary
    papers: tuple[PaperView, ...]


@dataclass(frozen=True)
class ReaderDigestPage:
    """One reader's digest of one edition, as their email showed it."""

    edition: EditionSummary
    items: tuple[DigestItem, ...]

    @property
    def general(self) -> bool:
        return bool(self.items) and all(i.reason == TRENDING_REASON for i in self.items)


def trending(context: Runtime, limit: int | None = None) -> Trending:
    """The most trending papers among the latest `digest.window_days` of listings."""
    with db.transaction(context.sessions) as session:
        return _trending(session, context.settings, limit or context.settings.web.home_papers)


class TrendingCache:
    """`trending` for the home page, computed again only when the papers change.

    Ranking a week of listings reads every paper in it; the key is one cheap aggregate
    query, so every process (and an ingest run elsewhere) is seen at the next request.
    Trending depends on the papers alone, not on the clock, so nothing else can stale it.
    """

    def __init__(self) -> None:
        self._stamp: tuple[object, ...] | None = None
        self._value: Trending | None = None
        # One computation at a time: a burst after a change waits for it, not repeats it.
        self._lock = threading.Lock()

    def get(self, context: Runtime) -> Trending:
        with self._lock, db.transaction(context.sessions) as session:
            stamp = paper_store.listing_stamp(session)
            if self._value is None or stamp != self._stamp:
                limit = context.settings.web.home_papers
                self._value = _trending(session, context.settings, limit)
                self._stamp = stamp
            return self._value


def _trending(session: Session, settings: Settings, limit: int) -> Trending:
    end = paper_store.latest_listing(session)
    if end is None:
        return Trending((), None, None)
    start = end - timedelta(days=settings.digest.window_days)
    listed = paper_store.papers_listed_between(session, start, end + timedelta(seconds=1))
    papers = general_top(listed, settings.matching.half_life_days, limit)
    return Trending(tuple(paper_view(p) for p in papers), start, end)


def editions(context: Runtime) -> list[EditionSummary]:
    with db.transaction(context.sessions) as session:
        rows = edition_store.list_editions(session, ARCHIVE_LIMIT)
        return [_summary(edition, count) for edition, count in rows]


def edition(context: Runtime, key: str) -> EditionPage | None:
    """The general (non-personal) version of an edition; None for an unknown key."""
    with db.transaction(context.sessions) as session:
        found = _named(session, key)
        if found is None:
            return None
        papers = tuple(paper_view(p) for p in edition_store.edition_papers(session, found.id))
        return EditionPage(_summary(found, len(papers)), papers)


def reader_digest(context: Runtime, key: str, subscriber_id: int) -> ReaderDigestPage | None:
    """A reader's own digest of edition `key`, from the papers planned for them (so the
    page shows what the email showed); None when they had no delivery in it."""
    with db.transaction(context.sessions) as session:
        found = _named(session, key)
        if found is None:
            return None
        planned = edition_store.delivered_papers_of(session, found.id, subscriber_id)
        if planned is None:
            return None
        items = tuple(DigestItem(paper_view(p), reason) for p, reason in planned)
        return ReaderDigestPage(_summary(found, len(items)), items)


def _named(session: Session, key: str) -> EditionInfo | None:
    """The edition a URL names; None for a malformed or unknown key (no query for the
    malformed)."""
    return edition_store.get_edition(session, key) if EDITION_KEY.match(key) else None


def _summary(edition: EditionInfo, count: int) -> EditionSummary:
    return EditionSummary(
        key=edition.key,
        window_start=edition.window_start,
        window_end=edition.window_end,
        scheduled_for=edition.scheduled_for,
        paper_count=count,
    )
