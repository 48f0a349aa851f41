"""Planning an edition: which week, which window, which papers for which reader.

An edition is one ISO week in `digest.timezone` ("2026-W48"). Its window is the
`digest.window_days` before its send instant (digest.weekday at digest.time of that
week), continued from where the previous edition's window stopped and ended when it
is planned (see `planned_window`), so no paper falls between two editions. Planning
records one delivery per active reader, each due at the send time in the reader's own
time zone; the database's unique keys make planning idempotent.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.orm import Session

from newsletter import db, relevance
from newsletter.config import DigestConfig, Settings
from newsletter.context import Context
from newsletter.errors import InvalidInput, NotFound
from newsletter.matching import Interest, Match, collection_paused
from newsletter.matching.embedder import paper_text
from newsletter.matching.expand import topic_names
from newsletter.matching.trending import most_trending
from newsletter.models import Paper, utcnow
from newsletter.relevance import EmbedProgress, interests_for, rank_papers, text_interest
from newsletter.store import outbox as store
from newsletter.store.papers import count_listed_between, latest_listing, papers_listed_between
from newsletter.store.subscribers import count_readers_to_mail, get_subscriber, readers_choices
from newsletter.views import INTEREST_REASON, TOPIC_REASON, TRENDING_REASON, PaperView

EDITION_KEY = re.compile(r"^(\d{4})-W(\d{2})$")
ARCHIVE_PAPERS = 50  # the general selection the web archive shows per edition


# --- weeks and times (pure) -----------------------------------------------------------


def edition_key(instant: datetime, zone: ZoneInfo) -> str:
    """The ISO week an instant falls in, in the edition's time zone: '2026-W48'."""
    year, week, _ = instant.astimezone(zone).isocalendar()
    return f"{year}-W{week:02d}"


def parse_key(key: str) -> tuple[int, int]:
    match = EDITION_KEY.match(key)
    if not match:
        raise InvalidInput(f"not an edition key: {key!r} (expected e.g. 2026-W48)")
    year, week = int(match.group(1)), int(match.group(2))
    try:
        date.fromisocalendar(year, week, 1)
    except ValueError:
        raise InvalidInput(f"not an edition key: {key!r} (no such ISO week)") from None
    return year, week


def send_instant(key: str, weekday: int, at: time, zone: ZoneInfo) -> datetime:
    """`weekday` (0 = Monday) at local time `at` in the ISO week `key`, as UTC.

    Wall-clock time in `zone`: the same 08:00 local before and after a DST change. A
    time skipped by a change resolves forward and a repeated one to its first
    occurrence (fold=0, PEP 495).
    """
    year, week = parse_key(key)
    day = date.fromisocalendar(year, week, weekday + 1)
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def reader_zone(timezone: str | None, default: ZoneInfo) -> ZoneInfo:
    if not timezone:
        return default
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return default


@dataclass(frozen=True)
class EditionSchedule:
    key: str
    window_start: datetime
    window_end: datetime
    scheduled_for: datetime


def schedule_for(config: DigestConfig, key: str) -> EditionSchedule:
    end = send_instant(key, config.weekday_index, config.time, config.zone)
    return EditionSchedule(key, end - timedelta(days=config.window_days), end, end)


def current_schedule(config: DigestConfig, now: datetime) -> EditionSchedule:
    return schedule_for(config, edition_key(now, config.zone))


def planned_window(
    schedule: EditionSchedule, previous_end: datetime | None, now: datetime, window_days: int
) -> tuple[datetime, datetime]:
    """The window an edition planned at `now` covers.

    It ends when it is planned: ahead of its send instant (the scheduler plans early so
    that readers east of `digest.timezone` get their morning) and after it alike (a
    late scheduler, `send-now` or `preview` mid-week), so every paper listed until then
    is in, and a paper listed later belongs to the next edition. A week after its send
    instant the following edition takes over, so the end never goes past that. It
    starts where the previous edition's window ended when that is earlier (at most one
    extra window back), so nothing listed between two plannings is skipped. Overlap is
    harmless: no paper is sent to a reader twice.
    """
    end = min(max(now, schedule.window_start), schedule.window_end + timedelta(days=7))
    start = schedule.window_start
    oldest = start - timedelta(days=window_days)
    if previous_end is not None and oldest <= previous_end < start:
        start = previous_end
    return start, end


def following_key(config: DigestConfig, key: str) -> str:
    """The edition after `key`."""
    instant = send_instant(key, config.weekday_index, config.time, config.zone)
    return edition_key(instant + timedelta(days=7), config.zone)


def week_dates(
    config: DigestConfig, window_start: datetime, window_end: datetime
) -> tuple[date, date]:
    """The window as the days a reader sees: first day to last day, local time."""
    zone = config.zone
    last = window_end.astimezone(zone) - timedelta(microseconds=1)
    return window_start.astimezone(zone).date(), last.date()


# --- why an edition has nothing -------------------------------------------------------

_INACTIVE = {
    "pending": "has not confirmed the subscription yet",
    "unsubscribed": "has unsubscribed",
    "bounced": "is marked bounced (too many hard bounces)",
}


class EditionWindow(Protocol):
    """What `why_nothing` reads of an edition (any of its shapes)."""

    @property
    def key(self) -> str: ...

    @property
    def window_start(self) -> datetime: ...

    @property
    def window_end(self) -> datetime: ...


def why_nothing(session: Session, edition: EditionWindow, email: str | None = None) -> str:
    """The one reason planning gave a reader (or, without `email`, anyone) nothing.

    In the order an admin would check: the reader, then the window's papers, then
    matching. Reads only.
    """
    if email is not None:
        subscriber = get_subscriber(session, email)
        if subscriber is None:
            return f"there is no subscriber with address {email}"
        if subscriber.status != "active":
            return f"{email} {_INACTIVE.get(subscriber.status, 'is ' + subscriber.status)}"
        if subscriber.paused:
            return f"{email} has paused their digest"
    elif not count_readers_to_mail(session):
        return "there is no active reader (or every active reader has paused their digest)"
    start, end = edition.window_start, edition.window_end
    papers = count_listed_between(session, start, end)
    if not papers:
        newest = latest_listing(session)
        stored = "no paper is stored" if newest is None else f"the newest was {_moment(newest)}"
        return (
            f"no paper was listed in the window of edition {edition.key} "
            f"({_moment(start)} to {_moment(end)}); {stored}: run `newsletter ingest`"
        )
    whose = f"{email}'s" if email is not None else "any reader's"
    return (
        f"none of the {papers} papers listed in the window of edition {edition.key} "
        f"({_moment(start)} to {_moment(end)}) matched {whose} topics and interests, "
        "and digest.skip_empty is on"
    )


def _moment(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


# --- choosing papers ------------------------------------------------------------------


Reader = store.PlanReader  # what choosing needs of a subscriber: id, topics, interests


def choose_for(
    session: Session,
    settings: Settings,
    readers: Sequence[Reader],
    papers: Sequence[Paper],
    delivered: Mapping[int, set[int]],
) -> dict[int, tuple[store.PlannedPaper, ...]]:
    """Each reader's papers, best first, at most digest.max_papers. Reads only.

    A reader with no topics or interests gets the general selection: the window's
    most trending papers, the same order as the archive and the home page.

    Ranking runs once per unique interest for all readers; each reader then merges
    their interests' ranked lists lazily (stopping at max_papers), skipping papers
    they were already sent. Readers with the same interests and no history share
    one result, and readers with the same choices share the work of reading them.
    """
    choices = _Choices(settings)
    of_reader = [choices.of(r) for r in readers]
    unique = list({i.key: i for mine, _ in of_reader for i in mine}.values())
    ranked = rank_papers(session, settings, unique, papers) if unique and papers else {}
    limit = settings.digest.max_papers
    streams = _Streams(ranked, limit)
    shared: dict[tuple[str, ...], tuple[store.PlannedPaper, ...]] = {}
    chosen: dict[int, tuple[store.PlannedPaper, ...]] = {}
    with collection_paused():  # many small objects, no cycles: see its docstring
        for reader, (mine, signature) in zip(readers, of_reader, strict=True):
            seen = delivered.get(reader.id, set())
            if not seen and signature in shared:
                chosen[reader.id] = shared[signature]
                continue
            if not mine:  # picked nothing: the general trending digest
                picks = _general(settings, papers, seen, limit)
            else:
                picks = _merge(mine, streams, seen, limit)
            chosen[reader.id] = picks
            if not seen:
                shared[signature] = picks
    return chosen


class _Choices:
    """Readers' interests, built once per distinct set of choices (and per topic and
    text): most readers share theirs with many others."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._found: dict[tuple[tuple[str, ...], tuple[str, ...]], _Choice] = {}
        self._topics: dict[str, list[Interest]] = {}
        self._texts: dict[str, list[Interest]] = {}

    def of(self, reader: Reader) -> _Choice:
        known = self._found.get((reader.topics, reader.interests))
        if known is None:
            # interests_for, one topic or text at a time: config topics, then texts.
            mine = [i for slug in reader.topics for i in self._topic(slug)]
            mine += [i for text in reader.interests for i in self._text(text)]
            known = self._found[reader.topics, reader.interests] = (
                mine,
                tuple(i.key for i in mine),
            )
        return known

    def _topic(self, slug: str) -> list[Interest]:
        if slug not in self._topics:
            self._topics[slug] = interests_for(self._settings, [slug], [])
        return self._topics[slug]

    def _text(self, text: str) -> list[Interest]:
        if text not in self._texts:
            self._texts[text] = interests_for(self._settings, [], [text])
        return self._texts[text]


_Choice = tuple[list[Interest], tuple[str, ...]]  # a reader's interests, and their keys
_Item = tuple[float, int, str]  # (-score, paper id, reason): the order merging keeps


class _Streams:
    """Each interest's ranked papers as merge items, made once per interest and
    reason; the matcher returns them best first by (-score, paper_id)."""

    def __init__(self, ranked: Mapping[str, Sequence[Match]], limit: int) -> None:
        self._ranked = ranked
        self._limit = limit
        self._items: dict[tuple[str, str], tuple[int, list[_Item]]] = {}  # (depth, items)

    def of(self, interest: Interest, depth: int) -> list[_Item]:
        reason = _reason(interest)
        made, items = self._items.get((interest.key, reason), (0, []))
        if made < depth:
            made = max(depth, self._limit)
            matches = self._ranked.get(interest.key, ())[:made]
            items = [(-m.score, m.paper_id, reason) for m in matches]
            self._items[interest.key, reason] = (made, items)
        return items if len(items) <= depth else items[:depth]


def _merge(
    interests: Sequence[Interest],
    streams: _Streams,
    seen: set[int],
    limit: int,
) -> tuple[store.PlannedPaper, ...]:
    # Skipping already-sent papers only removes items: each list's first
    # limit + len(seen) matches are all the merge can ever take.
    depth = limit + len(seen)
    lists = [streams.of(i, depth) for i in interests]
    items = lists[0] if len(lists) == 1 else heapq.merge(*lists)
    picks: list[store.PlannedPaper] = []
    taken: set[int] = set()
    for neg_score, paper_id, label in items:
        if paper_id in taken or paper_id in seen:
            continue  # a paper two interests match keeps its best score and reason
        taken.add(paper_id)
        picks.append(store.PlannedPaper(paper_id, -neg_score, label))
        if len(picks) >= limit:
            break
    return tuple(picks)


def _reason(interest: Interest) -> str:
    kind = TOPIC_REASON if interest.key.startswith("topic:") else INTEREST_REASON
    return kind + interest.label


def _general(
    settings: Settings, papers: Sequence[Paper], seen: set[int], limit: int
) -> tuple[store.PlannedPaper, ...]:
    top = general_top(papers, settings.matching.half_life_days, limit + len(seen))
    fresh = [p for p in top if p.id not in seen][:limit]
    # Scores only order a reader's list: rank 1 scores highest.
    return tuple(
        store.PlannedPaper(p.id, 1.0 - rank / (len(fresh) + 1), TRENDING_REASON)
        for rank, p in enumerate(fresh)
    )


def general_top(
    papers: Sequence[Paper], half_life_days: float, limit: int = ARCHIVE_PAPERS
) -> list[Paper]:
    """The non-personal selection (an edition's archive page, the home page): the most
    trending papers, by the score digests use."""
    order = most_trending(
        [(p.upvotes, p.comments) for p in papers], [p.listed_at for p in papers], half_life_days
    )
    return [papers[i] for i in order[:limit]]


def paper_view(paper: Paper) -> PaperView:
    return PaperView(
        id=paper.id,
        external_id=paper.external_id,
        title=paper.title,
        abstract=paper.abstract or "",
        authors=tuple(paper.authors or ()),
        summary=paper.summary,
        url=paper.url,
        pdf_url=paper.pdf_url,
        thumbnail_url=paper.thumbnail_url,
        code_url=paper.code_url,
        upvotes=paper.upvotes,
        comments=paper.comments,
        categories=tuple(paper.categories or ()),
        published_at=paper.published_at,
        listed_at=paper.listed_at,
    )


# --- planning -------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanResult:
    edition: store.EditionInfo
    created_edition: bool
    planned: int  # deliveries this call created
    digests: int
    quiet: int
    without_papers: int  # readers left out: nothing matched and skip_empty is on


def plan_edition(
    context: Context,
    now: datetime | None = None,
    email: str | None = None,
    key: str | None = None,
    embedding: EmbedProgress | None = None,
) -> PlanResult:
    """Plan an edition (idempotent): `key`, else the week `now` falls in.

    `email` plans only that reader; `embedding` is told the progress of embedding new
    papers and interests first (see embed_window).
    """
    now = now or utcnow()
    embed_window(context, now, key, embedding)
    with db.transaction(context.sessions, immediate=True) as session:
        return plan_in(session, context.settings, now, email, key)


def embed_window(
    context: Context,
    now: datetime | None = None,
    key: str | None = None,
    progress: EmbedProgress | None = None,
) -> int:
    """Embed the window's papers and the readers' interests before planning.

    Vectors are computed outside any transaction and stored chunk by chunk in short
    ones of their own: a plan that is rolled back (dry run, preview) keeps them, a
    killed run keeps the chunks done, the next run does not embed them again, and
    senders are never kept from the database while the model runs. `progress` is told
    (done, total) when there is something to embed. Returns how many papers were.
    """
    settings = context.settings
    if settings.matching.semantic == "off":
        return 0
    now = now or utcnow()
    model = relevance.stored_model_name(settings.matching)
    with db.transaction(context.sessions) as session:
        start, end = _window(session, settings, _schedule(settings, now, key), now)
        stale = {
            p.id: paper_text(p.title, p.abstract)
            for p in papers_listed_between(session, start, end)
            if p.embedding is None or p.embedding_model != model
        }
        topics, texts = readers_choices(session)
    # Every spelling of a text is embedded: planning ranks whichever a reader typed. So is
    # every configured topic, with its names: a one-word interest is compared with the
    # names and may be matched as the topic (matching.expand).
    interests = interests_for(settings, topics, texts) + _every_topic(settings)
    return relevance.store_new_embeddings(
        context.sessions, settings, stale, interests, progress
    ).papers


def _every_topic(settings: Settings) -> list[Interest]:
    """The configured topics and their names, as the interests matching.expand embeds."""
    topics = [t for t in (relevance.topic_interest(settings, c.slug) for c in settings.topics) if t]
    return topics + [text_interest(name) for t in topics for name in topic_names(t)]


def _schedule(settings: Settings, now: datetime, key: str | None) -> EditionSchedule:
    if key is not None:
        return schedule_for(settings.digest, key)
    return current_schedule(settings.digest, now)


def _window(
    session: Session, settings: Settings, schedule: EditionSchedule, now: datetime
) -> tuple[datetime, datetime]:
    previous_end = store.previous_window_end(session, schedule.key)
    return planned_window(schedule, previous_end, now, settings.digest.window_days)


def plan_in(
    session: Session,
    settings: Settings,
    now: datetime,
    email: str | None = None,
    key: str | None = None,
) -> PlanResult:
    """Planning inside the caller's transaction (send-now --dry-run rolls it back)."""
    if email is not None and get_subscriber(session, email) is None:
        # Checked first: a mistyped address must not leave a new edition behind.
        raise NotFound(f"no subscriber with address {email}")
    schedule = _schedule(settings, now, key)
    start, end = _window(session, settings, schedule, now)
    edition, created = store.ensure_edition(
        session, schedule.key, start, end, schedule.scheduled_for
    )
    if not created and edition.window_end < end:
        edition = store.widen_empty_edition(session, edition.id, start, end)
    subscribers = store.subscribers_to_plan(session, edition.id, email)
    if not subscribers:
        return PlanResult(edition, created, 0, 0, 0, 0)
    papers = papers_listed_between(session, edition.window_start, edition.window_end)
    top = general_top(papers, settings.matching.half_life_days)
    store.add_edition_papers(session, edition.id, [p.id for p in top])
    delivered = store.delivered_papers(session, [p.id for p in papers])
    chosen = choose_for(session, settings, subscribers, papers, delivered)
    planned = _deliveries(settings, edition.key, subscribers, chosen)
    count = store.insert_deliveries(session, edition.id, planned, now)
    quiet = sum(1 for p in planned if p.kind == "quiet")
    return PlanResult(
        edition, created, count, len(planned) - quiet, quiet, len(subscribers) - len(planned)
    )


def _deliveries(
    settings: Settings,
    key: str,
    subscribers: Sequence[Reader],
    chosen: Mapping[int, tuple[store.PlannedPaper, ...]],
) -> list[store.PlannedDelivery]:
    config = settings.digest
    due_by_zone: dict[str | None, datetime] = {}
    planned: list[store.PlannedDelivery] = []
    for subscriber in subscribers:
        papers = chosen.get(subscriber.id, ())
        if not papers and config.skip_empty:
            continue
        zone_name = subscriber.timezone
        if zone_name not in due_by_zone:
            zone = reader_zone(zone_name, config.zone)
            due_by_zone[zone_name] = send_instant(key, config.weekday_index, config.time, zone)
        kind = "digest" if papers else "quiet"
        planned.append(store.PlannedDelivery(subscriber.id, kind, due_by_zone[zone_name], papers))
    return planned
