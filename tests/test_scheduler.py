"""The weekly schedule: fire times, misfires, leader election, restarts, per-zone due times."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import func, select

from newsletter import status
from newsletter.delivery import drain as drain_mod
from newsletter.mail.capture import CaptureServer
from newsletter.runtime import Runtime
from newsletter.scheduler import WEEKLY_JOB_ID, Scheduler
from newsletter.store import db
from newsletter.store.models import Delivery, Edition
from tests.delivery_helpers import add_papers, add_readers, configured, received_by
from tests.scheduler_support import Clock, RecordingJobs, add_reader, due_times, wait_until

BERLIN = {"timezone": "Europe/Berlin", "weekday": "monday", "time": "08:00"}
AT_SEND_TIME = {"plan_ahead_hours": 0}
# Monday 2026-11-30 (ISO week 2026-W49), 08:00 in Berlin is 07:00 UTC.
MONDAY_0800_BERLIN = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
IN_W49_WINDOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def berlin(context: Runtime, server: CaptureServer | None = None, **schedule: object) -> Runtime:
    return configured(context, server, digest=BERLIN, schedule=schedule)


def editions(context: Runtime) -> list[str]:
    with db.transaction(context.sessions) as session:
        return list(session.scalars(select(Edition.key)))


# --- when the weekly job fires ----------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # the week before and the week of the EU change (29 March): 07:00 → 06:00 UTC
        (datetime(2026, 3, 25, 12, tzinfo=UTC), datetime(2026, 3, 30, 6, 0, tzinfo=UTC)),
        (datetime(2026, 3, 18, 12, tzinfo=UTC), datetime(2026, 3, 23, 7, 0, tzinfo=UTC)),
        # and back on 25 October
        (datetime(2026, 10, 21, 12, tzinfo=UTC), datetime(2026, 10, 26, 7, 0, tzinfo=UTC)),
        (datetime(2026, 10, 14, 12, tzinfo=UTC), datetime(2026, 10, 19, 6, 0, tzinfo=UTC)),
    ],
)
def test_the_weekly_job_fires_at_the_configured_local_time_across_dst(
    context: Runtime, now: datetime, expected: datetime
) -> None:
    settings = berlin(context, **AT_SEND_TIME).settings
    assert status.next_fire(settings, now) == expected
    assert status.edition_for_fire(settings, expected)[1] == expected


def test_by_default_it_plans_when_the_send_time_first_arrives_anywhere(context: Runtime) -> None:
    settings = berlin(context).settings
    fire = status.next_fire(settings, datetime(2026, 11, 25, tzinfo=UTC))
    # Monday 08:00 at UTC+14 is Sunday 18:00 UTC: before every reader's Monday 08:00.
    assert fire == datetime(2026, 11, 29, 18, 0, tzinfo=UTC)
    assert status.edition_for_fire(settings, fire) == ("2026-W49", MONDAY_0800_BERLIN)


def test_plan_ahead_hours_moves_the_run_back_across_midnight(context: Runtime) -> None:
    settings = berlin(context, plan_ahead_hours=10).settings
    fire = status.next_fire(settings, datetime(2026, 11, 25, tzinfo=UTC))
    assert fire == datetime(2026, 11, 29, 21, 0, tzinfo=UTC)  # Sunday 22:00 in Berlin
    assert status.edition_for_fire(settings, fire)[0] == "2026-W49"


def test_the_job_is_stored_in_the_database_with_its_local_fire_time(context: Runtime) -> None:
    ctx = berlin(context, **AT_SEND_TIME)
    with time_machine.travel(datetime(2026, 11, 25, 12, tzinfo=UTC)):
        scheduler = Scheduler(ctx, jobs=RecordingJobs(), owner="a")
        assert scheduler.step()
        try:
            assert scheduler._aps is not None
            job = scheduler._aps.get_job(WEEKLY_JOB_ID)
            assert job is not None
            assert job.next_run_time == MONDAY_0800_BERLIN
            assert (job.coalesce, job.max_instances) == (True, 1)
            assert job.misfire_grace_time == 6 * 3600
        finally:
            scheduler.stop()


# --- missed runs ------------------------------------------------------------------------


def _install_before_fire_time(ctx: Runtime) -> None:
    """A leader ran before Monday 08:00 and stopped: the job waits in the database."""
    with time_machine.travel(MONDAY_0800_BERLIN - timedelta(hours=1)):
        earlier = Scheduler(ctx, jobs=RecordingJobs(), owner="earlier")
        assert earlier.step()
        earlier.stop()


def test_a_run_missed_by_minutes_still_plans_that_weeks_edition(context: Runtime) -> None:
    ctx = berlin(context, **AT_SEND_TIME)
    add_papers(ctx, listed_at=IN_W49_WINDOW)
    add_readers(ctx, 3)
    _install_before_fire_time(ctx)
    jobs = RecordingJobs()
    with time_machine.travel(MONDAY_0800_BERLIN + timedelta(minutes=5)):
        later = Scheduler(configured(ctx), jobs=jobs, owner="later")
        assert later.step()
        try:
            assert jobs.planned.wait(20)
        finally:
            later.stop()
    assert editions(ctx) == ["2026-W49"]
    assert len(due_times(ctx)) == 3


def test_a_run_missed_beyond_the_grace_still_plans_while_a_reader_is_due(
    context: Runtime,
) -> None:
    # Monday 15:00 in Berlin: the run was at 08:00, but readers as far west as UTC-12
    # are due at 20:00 UTC.
    ctx = berlin(context, misfire_grace_hours=6, **AT_SEND_TIME)
    add_papers(ctx, listed_at=IN_W49_WINDOW)
    add_readers(ctx, 3)
    _install_before_fire_time(ctx)
    jobs = RecordingJobs()
    with time_machine.travel(MONDAY_0800_BERLIN + timedelta(hours=7)):
        later = Scheduler(configured(ctx), jobs=jobs, owner="later")
        assert later.step()
        try:
            assert later.catching_up == "2026-W49"
            assert jobs.planned.wait(20)
            aps = later._aps
            assert aps is not None
            next_week = MONDAY_0800_BERLIN + timedelta(days=7)
            wait_until(lambda: aps.get_job(WEEKLY_JOB_ID).next_run_time == next_week)
        finally:
            later.stop()
    assert jobs.planned_keys == ["2026-W49"]
    assert len(due_times(ctx)) == 3


# Default plan moment: Monday 08:00 at UTC+14 (Sunday 18:00 UTC); the last reader, at
# UTC-12, is due Monday 20:00 UTC; six hours of grace after that.
UTC_MONDAY_0800 = {"timezone": "UTC", "weekday": "monday", "time": "08:00"}
MONDAY_0800_UTC = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
W49_DEADLINE = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "offset",
    [timedelta(seconds=-75), timedelta(minutes=2), timedelta(hours=17, minutes=59)],
    ids=["75s-before-send-time", "2min-after", "just-before-the-deadline"],
)
def test_a_scheduler_started_after_the_plan_moment_plans_at_once_and_sends_whoever_is_due(
    any_context: Runtime, smtp_server: CaptureServer, offset: timedelta
) -> None:
    ctx = configured(any_context, smtp_server, digest=UTC_MONDAY_0800)
    add_papers(ctx, listed_at=IN_W49_WINDOW)
    add_reader(ctx, "tokyo@example.org", "Asia/Tokyo")  # due Sunday 23:00 UTC
    add_reader(ctx, "utc@example.org")
    add_reader(ctx, "baker@example.org", "Etc/GMT+12")  # the last: Monday 20:00 UTC
    start = MONDAY_0800_UTC + offset
    with time_machine.travel(start):
        scheduler = Scheduler(ctx, owner="late")
        assert scheduler.step()
        try:
            assert scheduler.catching_up == "2026-W49"
            wait_until(lambda: len(due_times(ctx)) == 3)
            wait_until(lambda: "tokyo@example.org" in received_by(smtp_server))
            assert scheduler._aps is not None
            job = scheduler._aps.get_job(WEEKLY_JOB_ID)
            assert job.next_run_time == datetime(2026, 12, 6, 18, 0, tzinfo=UTC)
        finally:
            scheduler.stop()
    assert editions(ctx) == ["2026-W49"]
    assert due_times(ctx) == {
        "tokyo@example.org": datetime(2026, 11, 29, 23, 0, tzinfo=UTC),
        "utc@example.org": MONDAY_0800_UTC,
        "baker@example.org": datetime(2026, 11, 30, 20, 0, tzinfo=UTC),
    }
    # The drain sends whoever is due; the others wait for their morning.
    drain_mod.drain(ctx, drain_mod.DrainOptions(), clock=lambda: start)
    due = {e for e, at in due_times(ctx).items() if at <= start}
    received = received_by(smtp_server)
    assert due <= set(received) and set(received.values()) == {1}
    assert ("baker@example.org" in received) == ("baker@example.org" in due)


def test_a_scheduler_started_after_the_whole_week_passed_skips_it_and_says_so(
    any_context: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = configured(any_context, digest=UTC_MONDAY_0800)
    add_papers(ctx, listed_at=IN_W49_WINDOW)
    add_readers(ctx, 2)
    jobs = RecordingJobs()
    with time_machine.travel(W49_DEADLINE + timedelta(minutes=1), tick=False):
        scheduler = Scheduler(ctx, jobs=jobs, owner="too-late")
        assert scheduler.step()
        assert scheduler.catching_up is None
        try:
            assert scheduler._aps is not None
            job = scheduler._aps.get_job(WEEKLY_JOB_ID)
            assert job.next_run_time == datetime(2026, 12, 6, 18, 0, tzinfo=UTC)
        finally:
            scheduler.stop()
        report = status.report(ctx)
    assert jobs.planned_keys == [] and editions(ctx) == []
    note = (
        "edition 2026-W49 was not planned: its last send time passed at 2026-11-30 20:00 UTC "
        "(more than the 6 h grace); the next is 2026-W50, planned at 2026-12-06 18:00 UTC"
    )
    assert note in caplog.text
    assert [(week.key, text) for week, text in report.skipped] == [("2026-W49", note)]
    assert report.overdue is None


def test_a_scheduler_started_before_the_plan_moment_does_not_plan_early(
    context: Runtime,
) -> None:
    ctx = configured(context, digest=UTC_MONDAY_0800)
    add_papers(ctx, listed_at=IN_W49_WINDOW)
    add_readers(ctx, 2)
    jobs = RecordingJobs()
    plan_moment = datetime(2026, 11, 29, 18, 0, tzinfo=UTC)
    with time_machine.travel(plan_moment - timedelta(seconds=75), tick=False):
        scheduler = Scheduler(ctx, jobs=jobs, owner="early")
        assert scheduler.step()
        assert scheduler.catching_up is None
        try:
            assert scheduler._aps is not None
            assert scheduler._aps.get_job(WEEKLY_JOB_ID).next_run_time == plan_moment
        finally:
            scheduler.stop()
    assert jobs.planned_keys == [] and editions(ctx) == []


def test_a_new_leader_does_not_plan_a_finished_edition_again(
    any_context: Runtime, smtp_server: CaptureServer
) -> None:
    ctx = configured(any_context, smtp_server, digest=UTC_MONDAY_0800)
    add_papers(ctx, listed_at=IN_W49_WINDOW)
    add_readers(ctx, 2)
    at = MONDAY_0800_UTC + timedelta(minutes=5)
    Scheduler(ctx, clock=lambda: at).plan_week()
    drain_mod.drain(ctx, drain_mod.DrainOptions(), clock=lambda: at)
    assert len(received_by(smtp_server)) == 2
    add_reader(ctx, "joined-later@example.org", "Asia/Tokyo")
    jobs = RecordingJobs()
    with time_machine.travel(at + timedelta(minutes=1), tick=False):
        scheduler = Scheduler(configured(ctx, smtp_server), jobs=jobs, owner="next")
        assert scheduler.step()
        assert scheduler.catching_up is None  # done: new deliveries would never be sent
        scheduler.stop()
    assert len(due_times(ctx)) == 2


def test_a_late_run_plans_its_own_week_even_after_the_week_turned(context: Runtime) -> None:
    # Sunday 23:30 in Berlin, run at Monday 01:00: still the edition of Sunday's week.
    ctx = configured(
        context,
        digest={**BERLIN, "weekday": "sunday", "time": "23:30"},
        schedule=AT_SEND_TIME,
    )
    jobs = RecordingJobs()
    late = datetime(2026, 11, 30, 0, 0, tzinfo=UTC)  # Monday 01:00 in Berlin
    scheduler = Scheduler(ctx, jobs=jobs, clock=lambda: late)
    scheduler.plan_week()
    assert editions(ctx) == ["2026-W48"]


# --- one leader ---------------------------------------------------------------------------


def test_only_one_scheduler_leads_and_a_standby_takes_over_when_the_lease_expires(
    context: Runtime,
) -> None:
    ctx = berlin(context, lease_seconds=30)
    clock = Clock(datetime(2026, 11, 25, 12, tzinfo=UTC))
    first = Scheduler(ctx, jobs=RecordingJobs(), owner="first", clock=clock)
    standby = Scheduler(configured(ctx), jobs=RecordingJobs(), owner="standby", clock=clock)
    try:
        assert first.step() and first.is_leader
        assert not standby.step() and not standby.is_leader
        clock.advance(20)
        assert first.step()  # renews
        clock.advance(20)
        assert not standby.step()  # 40 s in, but renewed at 20 s
        first.step_down(release=False)  # the leader dies without a word
        clock.advance(11)
        assert standby.step() and standby.is_leader
        assert not first.step()  # back from the dead, it stays a standby
    finally:
        first.stop()
        standby.stop()


def test_a_clean_stop_hands_the_lease_over_at_once(context: Runtime) -> None:
    ctx = berlin(context)
    clock = Clock(datetime(2026, 11, 25, 12, tzinfo=UTC))
    first = Scheduler(ctx, jobs=RecordingJobs(), owner="first", clock=clock)
    standby = Scheduler(configured(ctx), jobs=RecordingJobs(), owner="standby", clock=clock)
    assert first.step()
    first.stop()
    try:
        assert standby.step()
    finally:
        standby.stop()


def test_a_leader_that_lost_its_lease_stops_its_jobs(context: Runtime) -> None:
    ctx = berlin(context, lease_seconds=30)
    clock = Clock(datetime(2026, 11, 25, 12, tzinfo=UTC))
    slow = Scheduler(ctx, jobs=RecordingJobs(), owner="slow", clock=clock)
    other = Scheduler(configured(ctx), jobs=RecordingJobs(), owner="other", clock=clock)
    try:
        assert slow.step()
        clock.advance(31)  # the leader hung longer than its lease
        assert other.step()
        assert not slow.step() and not slow.is_leader
    finally:
        slow.stop()
        other.stop()


# --- restarts and per-reader times ----------------------------------------------------------


def test_a_restart_mid_edition_sends_everyone_exactly_once(
    context: Runtime, smtp_server: CaptureServer
) -> None:
    ctx = configured(context, smtp_server, digest=BERLIN, delivery={"batch_size": 4})
    add_papers(ctx, listed_at=IN_W49_WINDOW)
    emails = add_readers(ctx, 12)
    with time_machine.travel(MONDAY_0800_BERLIN + timedelta(minutes=30)):
        first = Scheduler(ctx, owner="first")
        first.plan_week()
        crash = threading.Event()  # the process stops after its first batch
        drain_mod.drain(
            ctx,
            drain_mod.DrainOptions(),
            stop=crash,
            progress=lambda counters: crash.set() if counters.sent >= 4 else None,
        )
        assert 4 <= len(received_by(smtp_server)) < 12
        restarted = Scheduler(configured(ctx, smtp_server), owner="restarted")
        assert restarted.step()
        try:
            wait_until(lambda: len(received_by(smtp_server)) == 12)
            again = restarted.plan_week()  # the weekly job running twice is harmless
        finally:
            restarted.stop()
    assert getattr(again, "planned", None) == 0
    received = received_by(smtp_server)
    assert sorted(received) == sorted(emails) and set(received.values()) == {1}
    with db.transaction(ctx.sessions) as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 12


WEEKS = {
    # Monday of the week → (Berlin, New York) offsets from UTC at 08:00 that Monday
    "us-spring": (datetime(2026, 3, 9, tzinfo=UTC), 1, -4),  # US changed on 8 March
    "eu-spring": (datetime(2026, 3, 30, tzinfo=UTC), 2, -4),  # EU changed on 29 March
    "eu-autumn": (datetime(2026, 10, 26, tzinfo=UTC), 1, -4),  # EU changed on 25 October
    "us-autumn": (datetime(2026, 11, 2, tzinfo=UTC), 1, -5),  # US changed on 1 November
}


@pytest.mark.parametrize("week", WEEKS.values(), ids=WEEKS.keys())
def test_every_reader_is_due_at_0800_local_across_dst_changes(
    context: Runtime, week: tuple[datetime, int, int]
) -> None:
    monday, berlin_offset, new_york_offset = week
    ctx = berlin(context)
    add_papers(ctx, listed_at=monday - timedelta(days=3))
    add_reader(ctx, "tokyo@example.org", "Asia/Tokyo")
    add_reader(ctx, "berlin@example.org", "Europe/Berlin")
    add_reader(ctx, "default@example.org")  # no zone of their own: digest.timezone
    add_reader(ctx, "newyork@example.org", "America/New_York")
    fire = status.next_fire(ctx.settings, monday - timedelta(days=3))
    Scheduler(ctx, clock=lambda: fire).plan_week()
    at_eight = monday + timedelta(hours=8)
    assert due_times(ctx) == {
        "tokyo@example.org": at_eight - timedelta(hours=9),
        "berlin@example.org": at_eight - timedelta(hours=berlin_offset),
        "default@example.org": at_eight - timedelta(hours=berlin_offset),
        "newyork@example.org": at_eight - timedelta(hours=new_york_offset),
    }
    assert all(due > fire for due in due_times(ctx).values())  # nobody's time has passed


def test_the_drain_sends_each_reader_when_their_morning_comes(
    context: Runtime, smtp_server: CaptureServer
) -> None:
    ctx = configured(context, smtp_server, digest=BERLIN)
    add_papers(ctx, listed_at=IN_W49_WINDOW)
    add_reader(ctx, "tokyo@example.org", "Asia/Tokyo")
    add_reader(ctx, "berlin@example.org", "Europe/Berlin")
    fire = status.next_fire(ctx.settings, IN_W49_WINDOW)
    Scheduler(ctx, clock=lambda: fire).plan_week()
    tokyo_morning = datetime(2026, 11, 29, 23, 5, tzinfo=UTC)  # Monday 08:05 in Tokyo
    drain_mod.drain(ctx, drain_mod.DrainOptions(), clock=lambda: tokyo_morning)
    assert set(received_by(smtp_server)) == {"tokyo@example.org"}
    drain_mod.drain(ctx, drain_mod.DrainOptions(), clock=lambda: MONDAY_0800_BERLIN)
    assert received_by(smtp_server) == {"tokyo@example.org": 1, "berlin@example.org": 1}
