"""The weekly schedule: plan each edition on time, drain due deliveries, one leader.

Every `serve` process (and `newsletter scheduler`) runs a `Scheduler`: a small loop
that takes or renews the `scheduler` lease (store.leases). Only the lease holder
runs APScheduler, whose jobs live in the app's own database (table
`apscheduler_jobs`), so a restart or a standby that takes over finds the weekly job
and its next run time there: a run missed by less than `schedule.misfire_grace_hours`
still happens. A run missed for longer is caught up when a scheduler takes the lead:
while a reader's due time of that week's edition is ahead (or passed less than the
grace ago), the weekly job runs at once (see status.latest_week); once the whole week
has passed, the edition is skipped and the log says so. Running a job twice is
harmless anyway: the edition key and the one-delivery-per-reader constraint turn a
second planning into a no-op, and deliveries are claimed with leases.

Persistent jobs must name their function by import path and pickle their arguments,
so a job carries only the lease owner's name; the function finds the live Scheduler
of that owner in this process (`_LEADERS`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.exc import SQLAlchemyError

from newsletter import status
from newsletter.delivery import drain as drain_mod
from newsletter.delivery import notices
from newsletter.planning import planner
from newsletter.runtime import Runtime
from newsletter.store import db, leases
from newsletter.store.models import utcnow

log = logging.getLogger(__name__)

LEASE_NAME = status.LEASE_NAME
WEEKLY_JOB_ID = "weekly-edition"
DRAIN_JOB_ID = "drain-outbox"
WEEKLY_JOB = "newsletter.scheduler:run_weekly_job"
DRAIN_JOB = "newsletter.scheduler:run_drain_job"
JOBS_TABLE = "apscheduler_jobs"

Clock = Callable[[], datetime]


class Jobs(Protocol):
    """What the scheduled jobs do; the delivery engine by default, fakes in tests."""

    def plan(self, context: Runtime, now: datetime, key: str) -> object: ...

    def drain(self, context: Runtime, stop: threading.Event) -> object: ...


class DeliveryJobs:
    """The real work: plan with newsletter.planning, send with newsletter.delivery."""

    def plan(self, context: Runtime, now: datetime, key: str) -> object:
        return planner.plan_edition(context, now, key=key, embedding=EmbeddingLog())

    def drain(self, context: Runtime, stop: threading.Event) -> object:
        notices.retry_confirmations(context)
        counters = drain_mod.drain(context, drain_mod.DrainOptions(), stop=stop)
        if counters.relay_error:  # the deliveries wait, untouched, for the next drain
            log.warning("drain stopped: %s", counters.relay_error)
        return counters


class EmbeddingLog:
    """Embedding progress in the log at INFO, once per chunk: never a silent minute."""

    def __init__(self) -> None:
        self._started = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        if not done:
            log.info("embedding %d new papers and interests before planning", total)
            return
        rate = done / max(time.monotonic() - self._started, 1e-6)
        log.info("embedded %d of %d new papers and interests (%.1f/s)", done, total, rate)


_LEADERS: dict[str, Scheduler] = {}
_LEADERS_LOCK = threading.Lock()


def run_weekly_job(owner: str) -> None:
    """APScheduler entry point of the weekly job (referenced by its import path)."""
    scheduler = _leader(owner)
    if scheduler is not None:
        scheduler.plan_week()
        scheduler.drain_soon()


def run_drain_job(owner: str) -> None:
    """APScheduler entry point of the drain job (referenced by its import path)."""
    scheduler = _leader(owner)
    if scheduler is not None:
        scheduler.drain()


def _leader(owner: str) -> Scheduler | None:
    with _LEADERS_LOCK:
        scheduler = _LEADERS.get(owner)
    if scheduler is None:
        # A job written by another process; its new leader rewrites the owner first.
        log.warning("scheduled job for %s, which does not lead in this process", owner)
    return scheduler


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Scheduler:
    """Leader election plus, while leading, APScheduler with the weekly and drain jobs.

    `start()` runs it on a background thread (inside `serve`); `run()` runs it in the
    calling thread until `stop()` (the standalone `newsletter scheduler`). `step()` is
    one round of the election, for tests that drive it by hand.
    """

    def __init__(
        self,
        context: Runtime,
        *,
        jobs: Jobs | None = None,
        owner: str | None = None,
        clock: Clock = utcnow,
    ) -> None:
        self.context = context
        self.settings = context.settings
        self.jobs = jobs or DeliveryJobs()
        self.owner = owner or default_owner()
        self.clock = clock
        self.on_change: Callable[[bool], None] = lambda leading: None
        self._stop = threading.Event()
        self._jobs_stop = threading.Event()
        self._aps: BackgroundScheduler | None = None
        self._thread: threading.Thread | None = None
        # The edition this leader planned at once on taking the lead (None: no catch-up).
        self.catching_up: str | None = None

    @property
    def is_leader(self) -> bool:
        return self._aps is not None

    # --- lifecycle ---

    def start(self) -> Scheduler:
        self._thread = threading.Thread(target=self.run, name="scheduler-lease", daemon=True)
        self._thread.start()
        return self

    def run(self) -> None:
        """Keep trying to lead (or keep leading) until stop(); then step down."""
        interval = self.settings.schedule.lease_seconds / 3
        try:
            while not self._stop.is_set():
                self.step()
                self._stop.wait(interval)
        finally:
            self.step_down(release=True)

    def request_stop(self) -> None:
        """Ask run() to step down and return (safe from a signal handler)."""
        self._stop.set()
        self._jobs_stop.set()

    def stop(self, timeout: float | None = None) -> None:
        """Finish the running jobs' in-flight messages, release the lease, return."""
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout)
        else:  # driven by step(): step down here
            self.step_down(release=True)

    def step(self) -> bool:
        """One round of the election: take or keep the lease, start or stop the jobs."""
        held = self._hold_lease()
        if held and self._aps is None and not self._stop.is_set():
            self._lead()
        elif not held and self._aps is not None:
            log.warning("%s lost the scheduler lease; stopping its jobs", self.owner)
            self.step_down(release=False)
        return held

    def _hold_lease(self) -> bool:
        seconds = self.settings.schedule.lease_seconds
        try:
            with db.transaction(self.context.sessions, immediate=True) as session:
                return leases.acquire(session, LEASE_NAME, self.owner, self.clock(), seconds)
        except SQLAlchemyError as exc:
            # Unreachable database: the lease cannot be proven ours, so do not lead.
            log.warning("cannot reach the database for the scheduler lease: %s", exc)
            return False

    def _lead(self) -> None:
        aps = _apscheduler(self.context, self.settings.schedule.misfire_grace_hours)
        # Paused: nothing may run before the persisted jobs name this process's owner.
        aps.start(paused=True)
        self._jobs_stop = threading.Event()
        with _LEADERS_LOCK:
            _LEADERS[self.owner] = self
        try:
            install_jobs(aps, self.context, self.owner, self.clock())
            self._catch_up(aps)
        except SQLAlchemyError as exc:
            log.warning("cannot install the scheduled jobs: %s", exc)
            aps.shutdown(wait=False)
            with _LEADERS_LOCK:
                _LEADERS.pop(self.owner, None)
            return
        self._aps = aps
        aps.resume()
        log.info("%s leads the scheduler", self.owner)
        self.on_change(True)

    def _catch_up(self, aps: BackgroundScheduler) -> None:
        """Run the weekly job at once when its latest run was missed but still matters.

        Through the persisted job itself (coalesced, one instance), so a run that
        APScheduler would also fire as a misfire plans once, and the job then waits for
        the next week's run: a catch-up never plans a later week early.
        """
        now = self.clock()
        latest = status.latest_week(self.context, now)
        week = latest.week
        self.catching_up = week.key if latest.plan_now else None
        if latest.plan_now:
            if latest.edition_status is None:
                log.warning(
                    "edition %s was due to be planned at %s and was not: planning it now "
                    "(its last reader is due at %s)",
                    week.key,
                    _when(week.plan_at),
                    _when(week.last_send),
                )
            # APScheduler keeps real time; self.clock only tells which week it is.
            aps.modify_job(WEEKLY_JOB_ID, jobstore="default", next_run_time=datetime.now(UTC))
        elif latest.skipped:
            log.warning("%s", status.skip_note(self.settings, week, now))

    def step_down(self, release: bool) -> None:
        aps, self._aps = self._aps, None
        if aps is not None:
            self._jobs_stop.set()  # a running drain sends what it holds and releases the rest
            aps.shutdown(wait=True)
            with _LEADERS_LOCK:
                _LEADERS.pop(self.owner, None)
            self.on_change(False)
        if release:
            try:
                with db.transaction(self.context.sessions) as session:
                    leases.release(session, LEASE_NAME, self.owner)
            except SQLAlchemyError as exc:
                log.warning("could not release the scheduler lease (it expires): %s", exc)

    # --- the jobs ---

    def plan_week(self) -> object:
        """Plan the edition of the latest firing (a late run still plans its own week)."""
        now = self.clock()
        key, _ = status.edition_for_fire(self.settings, status.last_fire(self.settings, now))
        log.info("planning edition %s", key)
        return self.jobs.plan(self.context, now, key)

    def drain(self) -> object:
        return self.jobs.drain(self.context, self._jobs_stop)

    def drain_soon(self) -> None:
        """Drain now rather than at the next interval: a late plan has readers due."""
        aps = self._aps
        if aps is not None:
            with contextlib.suppress(JobLookupError):  # stepped down meanwhile
                aps.modify_job(DRAIN_JOB_ID, jobstore="memory", next_run_time=datetime.now(UTC))


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _apscheduler(context: Runtime, grace_hours: float) -> BackgroundScheduler:
    # Its own engine: the job store disposes of it at shutdown.
    engine = db.make_engine(context.settings.database.url)
    return BackgroundScheduler(
        jobstores={
            "default": SQLAlchemyJobStore(engine=engine, tablename=JOBS_TABLE),
            "memory": MemoryJobStore(),
        },
        executors={"default": ThreadPoolExecutor(2)},
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": int(grace_hours * 3600),
        },
        timezone=UTC,
    )


def install_jobs(aps: BackgroundScheduler, context: Runtime, owner: str, now: datetime) -> None:
    """Put the weekly job (persistent) and the drain job (in memory) in place.

    An existing weekly job with the same trigger keeps its next run time, so a run
    missed while no process led still fires (within the grace time); replacing it
    would push it to next week. A changed schedule replaces it.
    """
    trigger = status.weekly_trigger(context.settings)
    existing = aps.get_job(WEEKLY_JOB_ID, jobstore="default")
    options: dict[str, Any] = {"args": [owner], "name": "plan the weekly edition"}
    if existing is not None and repr(existing.trigger) == repr(trigger):
        aps.modify_job(WEEKLY_JOB_ID, jobstore="default", func=WEEKLY_JOB, **options)
    else:
        aps.add_job(WEEKLY_JOB, trigger, id=WEEKLY_JOB_ID, replace_existing=True, **options)
    interval = context.settings.schedule.drain_interval_seconds
    aps.add_job(
        DRAIN_JOB,
        IntervalTrigger(seconds=interval, timezone=UTC),
        id=DRAIN_JOB_ID,
        jobstore="memory",
        args=[owner],
        name="send due deliveries",
        replace_existing=True,
        # At once: deliveries a previous leader left behind continue without waiting.
        next_run_time=now + timedelta(seconds=1),
    )


def start_in_background(context: Runtime) -> Callable[[], None]:
    """For `serve`: run the scheduler on a thread; returns the function that stops it."""
    scheduler = Scheduler(context).start()
    return scheduler.stop
