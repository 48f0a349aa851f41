"""When the weekly job runs, and how the editions are doing (`newsletter status`), and
the overview that `status` and the admin dashboard both show (`overview`): one place
computes the numbers, so the two can never disagree.

The schedule's times live here, not in the scheduler, so that `status` (and the web
app) can show them without starting a scheduler: the scheduler builds its trigger
from `weekly_trigger` below, and asks `latest_week` whether a run it missed (down,
deployed late, or its planning moment hours before digest.time) must be caught up.

An edition is due to readers at digest.time in each reader's own zone, so its last
reader gets it when that local time reaches UTC-12. Until then, and for
`schedule.misfire_grace_hours` after, a scheduler that starts late still plans it;
later the week is skipped, and `status` says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from newsletter.config import WEEKDAYS, Settings
from newsletter.planning.planner import why_nothing
from newsletter.planning.weeks import edition_key, send_instant
from newsletter.runtime import Runtime
from newsletter.store import audience, db, leases, progress, returns
from newsletter.store import editions as edition_store
from newsletter.store.editions import EditionInfo
from newsletter.store.leases import LeaseInfo
from newsletter.store.models import utcnow
from newsletter.store.progress import DeliveryTally, SendSpan
from newsletter.store.returns import EventCounts, InboundInfo
from newsletter.store.statuses import EditionStatus

LEASE_NAME = "scheduler"
# UTC+14 (Kiribati): where a given local time arrives first on Earth. Planning then
# leaves every reader's due time in the future. (Etc/ zones have inverted signs.)
EARLIEST_ZONE = ZoneInfo("Etc/GMT-14")
# UTC-12: where it arrives last, the due time of an edition's last reader.
LATEST_ZONE = ZoneInfo("Etc/GMT+12")
WEEK_MINUTES = 7 * 24 * 60


# --- the schedule (pure) ----------------------------------------------------------------


def weekly_trigger(settings: Settings) -> CronTrigger:
    """When the weekly planning job fires (see schedule.plan_ahead_hours)."""
    digest = settings.digest
    ahead = settings.schedule.plan_ahead_hours
    if ahead is None:
        return _cron(digest.weekday_index, digest.time.hour, digest.time.minute, EARLIEST_ZONE)
    # Shift the wall-clock week position back; a DST change in between is ignored on
    # purpose: "14 h before Monday 08:00" stays "Sunday 18:00" all year.
    start = digest.weekday_index * 1440 + digest.time.hour * 60 + digest.time.minute
    day, minute = divmod((start - round(ahead * 60)) % WEEK_MINUTES, 1440)
    return _cron(day, minute // 60, minute % 60, digest.zone)


def _cron(day: int, hour: int, minute: int, zone: ZoneInfo) -> CronTrigger:
    return CronTrigger(day_of_week=WEEKDAYS[day][:3], hour=hour, minute=minute, timezone=zone)


def next_fire(settings: Settings, now: datetime) -> datetime:
    """The next time the weekly job fires, at or after `now` (UTC)."""
    fire: datetime | None = weekly_trigger(settings).get_next_fire_time(None, now)
    assert fire is not None  # a weekly cron always has a next time
    return fire.astimezone(UTC)


def last_fire(settings: Settings, now: datetime) -> datetime:
    """The latest time the weekly job was due to fire, at or before `now` (UTC)."""
    fire = next_fire(settings, now - timedelta(days=8))
    while (following := next_fire(settings, fire + timedelta(seconds=1))) <= now:
        fire = following
    return fire


def edition_for_fire(settings: Settings, fire: datetime) -> tuple[str, datetime]:
    """The edition a firing plans: the first send instant at or after it (key, instant).

    With planning ahead the firing can fall in the previous ISO week, so the key comes
    from the send instant, not from the firing time.
    """
    digest = settings.digest
    for days in (0, 7, 14):
        key = edition_key(fire + timedelta(days=days), digest.zone)
        instant = send_instant(key, digest.weekday_index, digest.time, digest.zone)
        if instant >= fire:
            return key, instant
    raise AssertionError("a send instant always follows within two weeks")


@dataclass(frozen=True)
class Week:
    """An edition as the weekly run sees it: when it is planned, sent, and given up."""

    key: str
    plan_at: datetime  # the weekly run that plans it
    send_at: datetime  # digest.time in digest.timezone
    last_send: datetime  # digest.time at UTC-12: the last reader's due time
    deadline: datetime  # last_send + the misfire grace: a late scheduler plans it until then


def week_of_run(settings: Settings, fire: datetime) -> Week:
    key, send_at = edition_for_fire(settings, fire)
    digest = settings.digest
    last_send = send_instant(key, digest.weekday_index, digest.time, LATEST_ZONE)
    grace = timedelta(hours=settings.schedule.misfire_grace_hours)
    return Week(key, fire, send_at, last_send, last_send + grace)


def skip_note(settings: Settings, week: Week, now: datetime) -> str:
    """What the log and `status` say of a week that passed before anyone planned it."""
    upcoming = week_of_run(settings, next_fire(settings, now))
    return (
        f"edition {week.key} was not planned: its last send time passed at "
        f"{_when(week.last_send)} (more than the "
        f"{settings.schedule.misfire_grace_hours:g} h grace); the next is {upcoming.key}, "
        f"planned at {_when(upcoming.plan_at)}"
    )


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


# --- catching up ------------------------------------------------------------------------


@dataclass(frozen=True)
class LatestWeek:
    """The edition of the latest weekly run at `now`, and whether it was planned."""

    week: Week
    edition_status: str | None  # None: not planned
    now: datetime

    @property
    def plan_now(self) -> bool:
        """A scheduler taking the lead plans it at once (a no-op when already planned).

        Only while some reader's due time is ahead or within the grace, and not once the
        edition finished: new deliveries on a finished edition would never be sent.
        """
        return self.now < self.week.deadline and self.edition_status in (
            None,
            EditionStatus.SENDING,
        )

    @property
    def skipped(self) -> bool:
        return self.edition_status is None and self.now >= self.week.deadline


def latest_week(context: Runtime, now: datetime) -> LatestWeek:
    week = week_of_run(context.settings, last_fire(context.settings, now))
    with db.transaction(context.sessions) as session:
        found = edition_store.edition_status(session, week.key)
    return LatestWeek(week, found, now)


# --- the report -------------------------------------------------------------------------


@dataclass(frozen=True)
class EditionProgress:
    key: str
    scheduled_for: datetime
    status: str  # sending | paused | done
    paused_reason: str | None
    completed_at: datetime | None
    tally: DeliveryTally
    failure_reasons: tuple[tuple[str, int], ...] = ()
    empty_reason: str | None = None  # why it planned nobody
    span: SendSpan | None = None  # when its messages went out: duration and speed
    returned: EventCounts = field(default_factory=EventCounts)  # bounces, complaints


@dataclass(frozen=True)
class StatusReport:
    now: datetime
    next_run: datetime  # when the weekly job next plans an edition
    next_edition: str  # the edition that run plans
    next_send: datetime  # that edition's send time in digest.timezone
    leader: LeaseInfo | None  # the process running the scheduler, if any
    current: EditionProgress | None
    recent: tuple[EditionProgress, ...] = field(default=())
    # The latest run's edition, not planned yet: a scheduler that starts plans it at once.
    overdue: Week | None = None
    # Weeks that passed unplanned, newest first, each with the note the log printed.
    skipped: tuple[tuple[Week, str], ...] = field(default=())


def report(context: Runtime, now: datetime | None = None, recent: int = 5) -> StatusReport:
    """Next run, the current edition's progress, the last few editions' totals, and
    any week not planned (overdue now, or skipped because it passed)."""
    now = now or utcnow()
    settings = context.settings
    run = next_fire(settings, now)
    key, send_at = edition_for_fire(settings, run)
    with db.transaction(context.sessions) as session:
        leader = leases.holder(session, LEASE_NAME, now)
        rows = edition_store.latest_editions(session, recent + 1)
        counts = progress.tallies(session, [r.id for r in rows], now)
        reasons = progress.failure_reasons(session, rows[0].id) if rows else []
        empty = {r.id: why_nothing(session, r) for r in rows if r.id not in counts}
        spans = progress.send_spans(session, [r.id for r in rows])
        returned = returns.event_counts_by_edition(session, [r.id for r in rows])
    editions = [
        EditionProgress(
            r.key,
            r.scheduled_for,
            r.status,
            r.paused_reason,
            r.completed_at,
            counts.get(r.id, DeliveryTally()),
            empty_reason=empty.get(r.id),
            span=spans.get(r.id),
            returned=returned.get(r.id, EventCounts()),
        )
        for r in rows
    ]
    current = None
    if editions:
        current = EditionProgress(**{**editions[0].__dict__, "failure_reasons": tuple(reasons)})
    latest = week_of_run(settings, last_fire(settings, now))
    planned = {r.key for r in rows}
    overdue = latest if latest.key not in planned and now < latest.deadline else None
    skipped = tuple(
        (week, skip_note(settings, week, now))
        for week in _unplanned_weeks(settings, now, rows, recent + 1)
    )
    return StatusReport(
        now, run, key, send_at, leader, current, tuple(editions[1:]), overdue, skipped
    )


def _unplanned_weeks(
    settings: Settings, now: datetime, rows: Sequence[EditionInfo], limit: int
) -> list[Week]:
    """Weeks past their deadline with no edition, newest first: back to the oldest
    edition listed (a store with no edition yet: only the latest week, not the years
    before it was installed)."""
    planned = {r.key for r in rows}
    oldest = rows[-1].scheduled_for if rows else None
    found: list[Week] = []
    fire = last_fire(settings, now)
    for _ in range(limit):
        week = week_of_run(settings, fire)
        if oldest is not None and week.send_at <= oldest:
            break
        if week.key not in planned and now >= week.deadline:
            found.append(week)
        if oldest is None:
            break
        fire = last_fire(settings, fire - timedelta(seconds=1))
    return found


# --- the overview: the report plus the readers and what came back ----------------------

GROWTH_WEEKS = 12
RETURNS_WINDOW_DAYS = 30
INBOUND_SHOWN = 10  # the latest mail `newsletter inbound` kept for the admin


@dataclass(frozen=True)
class Readers:
    by_status: dict[str, int]  # every status, zero included
    paused: int  # active readers who paused their digest
    by_topic: tuple[tuple[str, str, int], ...]  # (slug, name, active readers), config order
    growth: tuple[tuple[datetime, int], ...]  # readers on the list at each week's end


@dataclass(frozen=True)
class Returns:
    """Hard bounces and complaints over messages sent, in the last `days` days."""

    days: int
    sent: int
    counts: EventCounts

    @property
    def bounce_rate(self) -> float | None:
        return self.counts.hard_bounces / self.sent if self.sent else None

    @property
    def complaint_rate(self) -> float | None:
        return self.counts.complaints / self.sent if self.sent else None


@dataclass(frozen=True)
class Overview:
    report: StatusReport
    readers: Readers
    returns: Returns
    # Mail to the bounce domain that was no bounce, complaint or unsubscribe (or could
    # not be read, or had a bad signature): kept, newest first.
    inbound: tuple[InboundInfo, ...] = ()

    @property
    def editions(self) -> tuple[EditionProgress, ...]:
        """The current edition first, then the earlier ones."""
        current = (self.report.current,) if self.report.current else ()
        return current + self.report.recent


def overview(context: Runtime, now: datetime | None = None, recent: int = 5) -> Overview:
    """What `newsletter status` and the dashboard show: the report, the readers (by
    status, per topic, growth) and the bounce and complaint rates."""
    now = now or utcnow()
    found = report(context, now, recent)
    moments = [now - timedelta(weeks=n) for n in range(GROWTH_WEEKS - 1, -1, -1)]
    since = now - timedelta(days=RETURNS_WINDOW_DAYS)
    with db.transaction(context.sessions) as session:
        by_status = audience.readers_by_status(session)
        paused = audience.paused_readers(session)
        per_topic = audience.active_readers_by_topic(session)
        growth = audience.readers_on_list_at(session, moments)
        counts = returns.event_counts(session, since)
        sent = returns.sent_since(session, since)
        kept = returns.recent_inbound(session, INBOUND_SHOWN)
    names = {t.slug: t.name for t in context.settings.topics}
    # Slugs readers still hold after a topic left the config are shown too, by slug.
    slugs = [*names, *sorted(set(per_topic) - set(names))]
    readers = Readers(
        by_status,
        paused,
        tuple((slug, names.get(slug, slug), per_topic.get(slug, 0)) for slug in slugs),
        tuple(zip(moments, growth, strict=True)),
    )
    returned = Returns(RETURNS_WINDOW_DAYS, sent, counts)
    return Overview(found, readers, returned, tuple(kept))
