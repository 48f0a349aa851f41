"""When the weekly job runs, and how the editions are doing (`newsletter status`).

The schedule's times live here, not in the scheduler, so that `status` (and the web
app) can show them without starting a scheduler: the scheduler builds its trigger
from `weekly_trigger` below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from newsletter import db
from newsletter.config import WEEKDAYS, Settings
from newsletter.context import Context
from newsletter.digest import edition_key, send_instant
from newsletter.models import utcnow
from newsletter.store import leases, progress
from newsletter.store.leases import LeaseInfo
from newsletter.store.progress import DeliveryTally

LEASE_NAME = "scheduler"
# UTC+14 (Kiribati): where a given local time arrives first on Earth. Planning then
# leaves every reader's due time in the future. (Etc/ zones have inverted signs.)
EARLIEST_ZONE = ZoneInfo("Etc/GMT-14")
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


@dataclass(frozen=True)
class StatusReport:
    now: datetime
    next_run: datetime  # when the weekly job next plans an edition
    next_edition: str  # the edition that run plans
    next_send: datetime  # that edition's send time in digest.timezone
    leader: LeaseInfo | None  # the process running the scheduler, if any
    current: EditionProgress | None
    recent: tuple[EditionProgress, ...] = field(default=())


def report(context: Context, now: datetime | None = None, recent: int = 5) -> StatusReport:
    """Next run, the current edition's progress and the last few editions' totals."""
    now = now or utcnow()
    settings = context.settings
    run = next_fire(settings, now)
    key, send_at = edition_for_fire(settings, run)
    with db.transaction(context.sessions) as session:
        leader = leases.holder(session, LEASE_NAME, now)
        rows = progress.latest_editions(session, recent + 1)
        counts = progress.tallies(session, [r.id for r in rows], now)
        reasons = progress.failure_reasons(session, rows[0].id) if rows else []
    editions = [
        EditionProgress(
            r.key,
            r.scheduled_for,
            r.status,
            r.paused_reason,
            r.completed_at,
            counts.get(r.id, DeliveryTally()),
        )
        for r in rows
    ]
    current = None
    if editions:
        current = EditionProgress(**{**editions[0].__dict__, "failure_reasons": tuple(reasons)})
    return StatusReport(now, run, key, send_at, leader, current, tuple(editions[1:]))
