"""Several schedulers on one PostgreSQL: one leader, one edition, takeover when it dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
import yaml
from sqlalchemy import func, select

from newsletter import status
from newsletter.mail.capture import CaptureServer
from newsletter.runtime import Runtime
from newsletter.scheduler import Scheduler
from newsletter.store import db, leases
from newsletter.store.models import Delivery, Edition
from tests.conftest import ROOT, TOPICS, make_settings
from tests.delivery_helpers import add_papers, add_readers, configured, received_by
from tests.scheduler_support import RecordingJobs, wait_until

pytestmark = pytest.mark.postgres

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
def pg_context(postgres_url: str) -> Iterator[Runtime]:
    ctx = Runtime(make_settings(postgres_url))
    db.upgrade(ctx.engine)
    yield ctx
    ctx.close()


def _counts(ctx: Runtime) -> tuple[int, int]:
    with db.transaction(ctx.sessions) as session:
        editions = session.scalar(select(func.count()).select_from(Edition)) or 0
        deliveries = session.scalar(select(func.count()).select_from(Delivery)) or 0
        return editions, deliveries


def _leader(ctx: Runtime) -> str | None:
    with db.transaction(ctx.sessions) as session:
        info = leases.holder(session, status.LEASE_NAME, datetime.now(UTC))
        return None if info is None else info.owner


def test_schedulers_racing_in_threads_elect_one_leader_and_plan_one_edition(
    pg_context: Runtime,
) -> None:
    fire = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)  # Monday 08:00 in Berlin
    ctx = configured(
        pg_context,
        digest={"timezone": "Europe/Berlin"},
        schedule={"plan_ahead_hours": 0},
    )
    add_papers(ctx, listed_at=fire - timedelta(days=2))
    add_readers(ctx, 5)
    with time_machine.travel(fire - timedelta(hours=1)):
        setup = Scheduler(ctx, jobs=RecordingJobs(), owner="setup")
        assert setup.step()
        setup.stop()
    with time_machine.travel(fire + timedelta(minutes=5)):
        jobs = [RecordingJobs() for _ in range(4)]
        schedulers = [Scheduler(configured(ctx), jobs=j, owner=f"s{i}") for i, j in enumerate(jobs)]
        barrier = threading.Barrier(len(schedulers))
        led: list[str] = []

        def contend(scheduler: Scheduler) -> None:
            barrier.wait()
            if scheduler.step():
                led.append(scheduler.owner)

        threads = [threading.Thread(target=contend, args=(s,)) for s in schedulers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        try:
            assert len(led) == 1
            assert wait_until(lambda: any(j.planned.is_set() for j in jobs))
        finally:
            for scheduler in schedulers:
                scheduler.stop()
    assert sum(len(j.planned_for) for j in jobs) == 1
    assert _counts(ctx) == (1, 5)


def _config(tmp_path: Path, url: str, server: CaptureServer, fire: datetime) -> Path:
    local = fire.astimezone(BERLIN)
    raw = {
        "database": {"url": url},
        "secret_key": "test-secret-key-0123456789",
        "topics": TOPICS,
        "smtp": {"host": server.host, "port": server.port},
        "digest": {
            "timezone": "Europe/Berlin",
            "weekday": local.strftime("%A").lower(),
            "time": local.strftime("%H:%M"),
        },
        "schedule": {"plan_ahead_hours": 0, "lease_seconds": 3, "drain_interval_seconds": 1},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def _spawn(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "newsletter", "--config", str(config), "scheduler"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _pid_of(owner: str) -> int:
    return int(owner.split(":")[1])


def test_two_scheduler_processes_send_one_edition_and_the_standby_takes_over(
    postgres_url: str, smtp_server: CaptureServer, tmp_path: Path
) -> None:
    # The weekly run was due two minutes ago while no scheduler ran (within the grace).
    fire = (datetime.now(UTC) - timedelta(minutes=2)).replace(second=0, microsecond=0)
    config = _config(tmp_path, postgres_url, smtp_server, fire)
    ctx = Runtime(make_settings(postgres_url, **yaml.safe_load(config.read_text())))
    db.upgrade(ctx.engine)
    add_papers(ctx, listed_at=fire - timedelta(days=2))
    emails = add_readers(ctx, 5)
    with time_machine.travel(fire - timedelta(minutes=1)):
        setup = Scheduler(ctx, jobs=RecordingJobs(), owner="setup")
        assert setup.step()
        setup.stop()
    processes = [_spawn(config, tmp_path / f"scheduler{i}.log") for i in range(2)]
    try:
        wait_until(lambda: len(received_by(smtp_server)) == 5, timeout=60)
        leader = _pid_of(wait_until(lambda: _leader(ctx)))
        assert leader in {p.pid for p in processes}
        assert _counts(ctx) == (1, 5)
        os.kill(leader, signal.SIGKILL)  # the leader dies without releasing the lease
        standby = next(p for p in processes if p.pid != leader)
        wait_until(lambda: (owner := _leader(ctx)) and _pid_of(owner) == standby.pid)
        standby.send_signal(signal.SIGTERM)
        assert standby.wait(timeout=30) == 0
        assert _leader(ctx) is None  # a clean stop releases the lease at once
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait()
        ctx.close()
    received = received_by(smtp_server)
    assert sorted(received) == sorted(emails) and set(received.values()) == {1}
    assert "leads" in (tmp_path / f"scheduler{processes.index(standby)}.log").read_text()
