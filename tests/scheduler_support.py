"""Helpers for the scheduler tests: a hand-set clock, recording jobs, waiting for a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from newsletter.planning import planner
from newsletter.runtime import Runtime
from newsletter.store import db
from newsletter.store.models import Delivery, Subscriber
from newsletter.store.subscribers import add_subscriber


class Clock:
    """A clock the test moves by hand (for the lease; APScheduler keeps real time)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class RecordingJobs:
    """Jobs that plan for real (planning is the point) and record when they ran."""

    def __init__(self) -> None:
        self.planned_for: list[datetime] = []
        self.planned_keys: list[str] = []
        self.planned = threading.Event()
        self.drains = 0

    def plan(self, context: Runtime, now: datetime, key: str) -> object:
        result = planner.plan_edition(context, now, key=key)
        self.planned_for.append(now)
        self.planned_keys.append(key)
        self.planned.set()
        return result

    def drain(self, context: Runtime, stop: threading.Event) -> object:
        self.drains += 1
        return None


def wait_until(condition: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Poll until `condition()` is truthy; fail the test if it never is (not a speed test)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def add_reader(context: Runtime, email: str, timezone: str | None = None) -> None:
    with db.transaction(context.sessions) as session:
        add_subscriber(session, email, status="active", topics=["llms"], timezone=timezone)


def due_times(context: Runtime) -> dict[str, datetime]:
    with db.transaction(context.sessions) as session:
        rows = session.execute(
            select(Subscriber.email, Delivery.next_attempt_at).join(
                Delivery, Delivery.subscriber_id == Subscriber.id
            )
        )
        return {email: due for email, due in rows}
