"""After a crash, the next run carries on at once: claims of a process that is
provably gone (same host, PID not running) are taken back, other claims are waited
for visibly, and compose processes die with the process that started them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from newsletter.delivery import dispatch
from newsletter.delivery.outcomes import Counters
from newsletter.planning import planner
from newsletter.runtime import Runtime
from newsletter.scheduler import DeliveryJobs
from newsletter.store import db
from newsletter.store.models import Delivery
from tests.delivery_helpers import NOW, add_papers, add_readers, clock_from, configured, received_by
from tests.process_helpers import bulk_readers, current_window_instant, start, write_config
from tests.smtp_faults import FaultHandler, fault_server

READERS = 300


def wait_until(condition: object, timeout: float, what: str) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.01)


def killed_part_way(
    process: subprocess.Popen[bytes], received: object, enough: int, log: Path
) -> None:
    assert callable(received)
    try:
        wait_until(lambda: received() >= enough or process.poll() is not None, 60, "mail")
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(10)
    assert process.returncode == -signal.SIGKILL, log.read_text()


def test_send_now_after_a_kill_takes_back_the_dead_process_claims_at_once(
    any_context: Runtime, tmp_path: Path
) -> None:
    add_papers(any_context, 20, current_window_instant(any_context))
    emails = bulk_readers(any_context, READERS)
    with fault_server() as server:
        assert isinstance(server.handler, FaultHandler)
        server.handler.delay = 0.01
        config = write_config(
            tmp_path / "config.yaml",
            any_context.settings.database.url,
            smtp={"host": server.host, "port": server.port, "connections": 2},
            delivery={"lease_seconds": 3600},  # waiting it out would outlast the test
        )
        first = start(config, "send-now", log=tmp_path / "first.log")
        killed_part_way(first, lambda: len(server.messages), 30, tmp_path / "first.log")
        assert len(server.messages) < READERS  # really killed part-way

        second = start(config, "send-now", log=tmp_path / "second.log")
        try:
            code = second.wait(60)
        finally:
            second.kill()
            second.wait()
        assert code == 0, (tmp_path / "second.log").read_text()
    assert set(received_by(server)) == set(emails)


def test_claims_of_a_live_process_elsewhere_are_waited_for_and_shown(
    any_context: Runtime,
) -> None:
    with fault_server() as server:
        ctx = configured(any_context, server, smtp={"connections": 2})
        add_papers(ctx)
        emails = add_readers(ctx, 5)
        planner.plan_edition(ctx, NOW)
        until = NOW + timedelta(seconds=1)
        with db.transaction(ctx.sessions) as session:
            ids = session.scalars(select(Delivery.id).order_by(Delivery.id).limit(3)).all()
            session.execute(
                update(Delivery)
                .where(Delivery.id.in_(ids))
                .values(
                    status="sending", lease_owner="far.example:4242:0123abcd", leased_until=until
                )
            )
        shown: list[str] = []

        def progress(counters: Counters) -> None:
            if counters.waiting and counters.waiting not in shown:
                shown.append(counters.waiting)

        counters = dispatch.send_now(ctx, clock=clock_from(NOW), progress=progress).counters
    assert shown == [f"3 deliveries are claimed by far.example:4242 until {until:%H:%M:%S} UTC"]
    assert counters.sent == 5 and received_by(server) == dict.fromkeys(emails, 1)


def descendants(pid: int) -> set[int]:
    """Every living process below `pid`, from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_bytes()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(b")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    return state != b"Z"


def test_compose_processes_die_with_a_killed_send_now(context: Runtime, tmp_path: Path) -> None:
    add_papers(context, 20, current_window_instant(context))
    bulk_readers(context, READERS)
    with fault_server() as server:
        assert isinstance(server.handler, FaultHandler)
        server.handler.delay = 0.02
        config = write_config(
            tmp_path / "config.yaml",
            context.settings.database.url,
            smtp={"host": server.host, "port": server.port, "connections": 2},
        )
        sender = start(config, "send-now", "--workers", "2", log=tmp_path / "send.log")
        children: set[int] = set()
        try:
            wait_until(lambda: len(server.messages) >= 20, 60, "the first messages")
            children = descendants(sender.pid)
            sender.send_signal(signal.SIGKILL)
        finally:
            sender.wait(10)
        assert len(children) >= 2, children  # the compose processes (and their helper)
        try:
            wait_until(lambda: not any(alive(pid) for pid in children), 30, "orphans to exit")
        finally:  # never leave them behind, whatever the outcome
            for pid in filter(alive, children):
                os.kill(pid, signal.SIGKILL)


def test_the_scheduler_drain_takes_back_claims_of_a_dead_process_on_this_host(
    any_context: Runtime,
) -> None:
    finished = subprocess.Popen(["true"])
    finished.wait()  # reaped: its PID is certainly gone
    dead = f"{socket.gethostname()}:{finished.pid}:0123abcd"
    with fault_server() as server:
        ctx = configured(any_context, server, smtp={"connections": 2})
        add_papers(ctx)
        emails = add_readers(ctx, 5)
        planner.plan_edition(ctx, NOW)
        with db.transaction(ctx.sessions) as session:
            session.execute(
                update(Delivery).values(
                    status="sending",
                    lease_owner=dead,
                    leased_until=datetime.now(UTC) + timedelta(hours=1),
                    next_attempt_at=NOW,
                )
            )
        DeliveryJobs().drain(ctx, threading.Event())
    assert received_by(server) == dict.fromkeys(emails, 1)
