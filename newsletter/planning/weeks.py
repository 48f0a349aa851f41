"""The calendar of editions: which week, which window, when it is sent (pure).

An edition is one ISO week in `digest.timezone` ("2026-W48"). Its window is the
`digest.window_days` before its send instant (digest.weekday at digest.time of that
week), continued from where the previous edition's window stopped and ended when it
is planned (see `planned_window`), so no paper falls between two editions. Each
reader's delivery is due at the send time in the reader's own time zone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from newsletter.config import DigestConfig
from newsletter.errors import InvalidInput

EDITION_KEY = re.compile(r"^(\d{4})-W(\d{2})$")


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
