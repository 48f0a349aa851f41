"""Real `newsletter scheduler` processes started after the weekly plan moment, at real time.

With the default plan moment (digest.time at UTC+14) a scheduler started near
digest.time UTC is 14 hours late: it must plan the edition at once and send it.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from newsletter.config import load_settings
from newsletter.mail.capture import CaptureServer
from newsletter.runtime import Runtime
from newsletter.store import db
from newsletter.store.models import Delivery, Edition
from tests.conftest import CliResult
from tests.delivery_helpers import add_papers, add_readers, received_by
from tests.process_helpers import start, write_config
from tests.scheduler_support import due_times, wait_until


def _config(path: Path, url: str, server: CaptureServer, send_at: datetime) -> Path:
    """Weekly at `send_at`'s weekday and minute (UTC); the default plan moment."""
    return write_config(
        path,
        url,
        smtp={"host": server.host, "port": server.port},
        digest={
            "timezone": "UTC",
            "weekday": send_at.strftime("%A").lower(),
            "time": send_at.strftime("%H:%M"),
        },
        schedule={"lease_seconds": 3, "drain_interval_seconds": 1},
    )


def _prepared(config: Path, send_at: datetime, readers: int) -> tuple[Runtime, list[str]]:
    ctx = Runtime(load_settings(config))
    db.upgrade(ctx.engine)
    add_papers(ctx, listed_at=send_at - timedelta(days=2))
    return ctx, add_readers(ctx, readers)


def _editions(ctx: Runtime) -> list[tuple[str, int]]:
    with db.transaction(ctx.sessions) as session:
        rows = session.execute(
            select(Edition.key, func.count(Delivery.id))
            .outerjoin(Delivery, Delivery.edition_id == Edition.id)
            .group_by(Edition.key)
        )
        return [(key, int(n)) for key, n in rows]


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.postgres
def test_two_schedulers_started_after_digest_time_plan_at_once_and_send_everyone(
    postgres_url: str,
    smtp_server: CaptureServer,
    tmp_path: Path,
    run_cli: Callable[..., CliResult],
) -> None:
    send_at = (datetime.now(UTC) - timedelta(minutes=2)).replace(second=0, microsecond=0)
    config = _config(tmp_path / "config.yaml", postgres_url, smtp_server, send_at)
    ctx, emails = _prepared(config, send_at, readers=5)
    before = run_cli("--config", str(config), "status", "--json")
    assert before.exit_code == 0, before.stderr
    overdue = json.loads(before.stdout)["overdue"]
    assert overdue is not None and overdue["send_at"] == send_at.isoformat()
    logs = [tmp_path / f"scheduler{i}.log" for i in range(2)]
    processes = [start(config, "scheduler", log=log) for log in logs]
    try:
        wait_until(lambda: len(received_by(smtp_server)) == 5, timeout=90)
        # Both must be running before they are stopped: a process still importing when
        # SIGTERM arrives has no handler yet, and dies of the signal.
        wait_until(lambda: all("started;" in log.read_text() for log in logs), timeout=60)
    finally:
        _stop(processes)
        ctx.close()
    assert [p.returncode for p in processes] == [0, 0]
    received = received_by(smtp_server)
    assert sorted(received) == sorted(emails) and set(received.values()) == {1}
    assert _editions(ctx) == [(overdue["key"], 5)]
    output = "".join(log.read_text() for log in logs)
    assert f"leads: planning edition {overdue['key']} now" in output
    after = json.loads(run_cli("--config", str(config), "status", "--json").stdout)
    assert after["overdue"] is None and after["skipped"] == []
    assert (after["current"]["key"], after["current"]["sent"]) == (overdue["key"], 5)


def test_a_scheduler_started_just_before_digest_time_plans_at_once_and_sends_on_time(
    sqlite_url: str, smtp_server: CaptureServer, tmp_path: Path
) -> None:
    # The next whole minute at least 20 s ahead: the plan moment (UTC+14) is long past.
    send_at = (datetime.now(UTC) + timedelta(seconds=80)).replace(second=0, microsecond=0)
    config = _config(tmp_path / "config.yaml", sqlite_url, smtp_server, send_at)
    ctx, emails = _prepared(config, send_at, readers=3)
    process = start(config, "scheduler", log=tmp_path / "scheduler.log")
    try:
        wait_until(lambda: len(due_times(ctx)) == 3, timeout=60)
        assert set(due_times(ctx).values()) == {send_at}  # planned ahead of the send time
        wait_until(lambda: len(received_by(smtp_server)) == 3, timeout=120)
    finally:
        _stop([process])
        ctx.close()
    assert process.returncode == 0
    received = received_by(smtp_server)
    assert sorted(received) == sorted(emails) and set(received.values()) == {1}
