"""A relay that cannot be reached or refuses everything: `send-now` stops soon with one
line naming the relay, exits non-zero, and leaves every delivery for the next run; the
failure breaker judges deliveries since the last resume, not retries of one."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from newsletter.delivery import dispatch
from newsletter.delivery import drain as drain_mod
from newsletter.delivery.outcomes import Counters
from newsletter.mail.capture import CaptureServer
from newsletter.planning import planner
from newsletter.runtime import Runtime
from newsletter.scheduler import DeliveryJobs
from newsletter.store import db
from newsletter.store.models import Delivery, DeliveryAttempt, Edition
from tests.conftest import CliResult
from tests.delivery_helpers import NOW, add_papers, add_readers, clock_from, configured, received_by
from tests.process_helpers import current_window_instant
from tests.smtp_faults import FaultHandler, RefusingServer, closed_port, fault_server

READERS = 12
# Small enough that the outage would have burned every delivery to `failed` before.
FAST = {"retry_base_seconds": 0.01, "max_attempts": 3}
OUTAGES = ["nothing listening", "session refused", "421 to every command", "sender refused"]


@pytest.fixture(params=OUTAGES)
def relay_down(request: pytest.FixtureRequest) -> Iterator[tuple[str, int, str]]:
    """(host, port, words the cause must contain) of a relay in each kind of outage."""
    with ExitStack() as stack:
        if request.param == "nothing listening":
            port = stack.enter_context(closed_port())
            yield "127.0.0.1", port, "refused"
        elif request.param == "session refused":
            refusing = stack.enter_context(RefusingServer())
            yield refusing.host, refusing.port, "421"
        else:
            server = stack.enter_context(fault_server())
            assert isinstance(server.handler, FaultHandler)
            server.handler.mail_reply = (
                "421 4.3.2 Try again later"
                if request.param == "421 to every command"
                else "550 5.7.1 Sender address rejected"
            )
            yield server.host, server.port, server.handler.mail_reply.split()[0]


Cli = Callable[..., CliResult]


def cli_to(
    config_file: Callable[..., Path], run_cli: Cli, host: str, port: int, connections: int = 2
) -> Cli:
    path = config_file(
        smtp={"host": host, "port": port, "connections": connections, "timeout": 2},
        delivery=FAST,
        matching={"semantic": "off"},
    )
    return lambda *args: run_cli("--config", str(path), *args)


def delivery_states(context: Runtime) -> dict[tuple[str, int], int]:
    with db.transaction(context.sessions) as session:
        rows = session.execute(
            select(Delivery.status, Delivery.attempts, func.count()).group_by(
                Delivery.status, Delivery.attempts
            )
        )
        return {(status, attempts): count for status, attempts, count in rows}


def test_send_now_stops_on_a_relay_outage_with_one_line_and_loses_nothing(
    context: Runtime,
    config_file: Callable[..., Path],
    run_cli: Cli,
    relay_down: tuple[str, int, str],
    smtp_server: CaptureServer,
) -> None:
    add_papers(context, 20, current_window_instant(context))
    readers = add_readers(context, READERS)
    host, port, cause = relay_down

    down = cli_to(config_file, run_cli, host, port)("send-now")

    assert down.exit_code != 0, down.stdout
    (line,) = down.stderr.strip().splitlines()
    assert f"{host}:{port}" in line and cause in line, line
    assert "Traceback" not in down.stdout + down.stderr
    # Every delivery is left as planned: nothing burned to `failed`, no attempt counted.
    assert delivery_states(context) == {("queued", 0): READERS}

    back = cli_to(config_file, run_cli, smtp_server.host, smtp_server.port)("send-now")
    assert back.exit_code == 0, back.stderr
    assert received_by(smtp_server) == dict.fromkeys(readers, 1)


def test_a_list_smaller_than_the_pool_stops_on_a_relay_outage_too(
    context: Runtime, config_file: Callable[..., Path], run_cli: Cli
) -> None:
    add_papers(context, 20, current_window_instant(context))
    add_readers(context, 2)
    with closed_port() as port:
        down = cli_to(config_file, run_cli, "127.0.0.1", port, connections=4)("send-now")
    assert down.exit_code != 0
    assert f"127.0.0.1:{port}" in down.stderr and len(down.stderr.strip().splitlines()) == 1
    assert delivery_states(context) == {("queued", 0): 2}


def test_a_worker_that_finds_the_relay_down_exits_non_zero_and_keeps_the_deliveries(
    context: Runtime, config_file: Callable[..., Path], run_cli: Cli
) -> None:
    add_papers(context, 20, current_window_instant(context))
    add_readers(context, READERS)
    planner.plan_edition(configured(context, matching={"semantic": "off"}))
    with db.transaction(context.sessions) as session:  # due now
        session.execute(update(Delivery).values(next_attempt_at=NOW))
    with closed_port() as port:
        down = cli_to(config_file, run_cli, "127.0.0.1", port)("worker")
    assert down.exit_code == 1
    (line,) = down.stderr.strip().splitlines()
    assert f"127.0.0.1:{port}" in line and "the worker stopped" in line, line
    assert delivery_states(context) == {("queued", 0): READERS}


def test_the_scheduler_drain_logs_one_warning_on_a_relay_outage_and_keeps_the_deliveries(
    context: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    with closed_port() as port:
        ctx = configured(context, smtp={"port": port, "timeout": 2}, delivery=FAST)
        add_papers(ctx, 20, current_window_instant(ctx))
        add_readers(ctx, READERS)
        planner.plan_edition(configured(ctx, matching={"semantic": "off"}))
        with db.transaction(ctx.sessions) as session:  # due now, as the drain job sends
            session.execute(update(Delivery).values(next_attempt_at=NOW))
        with caplog.at_level(logging.WARNING):
            DeliveryJobs().drain(ctx, threading.Event())
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert f"127.0.0.1:{port}" in warnings[0].getMessage()
    assert delivery_states(ctx) == {("queued", 0): READERS}


def test_a_looping_worker_outlives_a_relay_outage_and_keeps_the_deliveries(
    context: Runtime,
) -> None:
    with closed_port() as port:
        ctx = configured(context, smtp={"port": port, "timeout": 2}, delivery=FAST)
        add_papers(ctx, 20, current_window_instant(ctx))
        add_readers(ctx, READERS)
        planner.plan_edition(configured(ctx, matching={"semantic": "off"}))
        with db.transaction(ctx.sessions) as session:
            session.execute(update(Delivery).values(next_attempt_at=NOW))
        stop = threading.Event()
        shown: list[str] = []

        def progress(counters: Counters) -> None:
            if counters.waiting:
                shown.append(counters.waiting)
                stop.set()  # it did not exit on the outage: enough seen

        drain_mod.drain(ctx, drain_mod.DrainOptions(loop=True), stop=stop, progress=progress)
    assert len(shown) == 1 and f"127.0.0.1:{port}" in shown[0] and "trying again" in shown[0]
    assert delivery_states(ctx) == {("queued", 0): READERS}


# --- the failure breaker ----------------------------------------------------------------


def prepared(context: Runtime, server: CaptureServer, readers: int, **delivery: object) -> Runtime:
    ctx = configured(context, server, smtp={"connections": 2}, delivery={**FAST, **delivery})
    add_papers(ctx)
    add_readers(ctx, readers)
    planner.plan_edition(ctx, NOW)
    return ctx


def handler(server: CaptureServer) -> FaultHandler:
    assert isinstance(server.handler, FaultHandler)
    return server.handler


def edition_status(ctx: Runtime) -> str:
    with db.transaction(ctx.sessions) as session:
        return session.scalars(select(Edition.status)).one()


def test_retries_of_one_reader_do_not_pause_the_edition(
    any_context: Runtime,
) -> None:
    with fault_server() as server:
        last = f"reader{29:05d}@example.org"  # sent last, so its retries end the run
        handler(server).data_replies[last] = ["450 4.2.0 Mailbox busy"] * 10
        ctx = prepared(
            any_context, server, 30, failure_window=10, failure_threshold=0.15, max_attempts=5
        )
        counters = dispatch.send_now(ctx, clock=clock_from(NOW)).counters
        assert counters.paused_reason is None
        assert (counters.sent, counters.failed, counters.retried) == (29, 1, 4)
        assert edition_status(ctx) == "done"


def test_a_resumed_edition_is_judged_only_on_attempts_after_the_resume(
    any_context: Runtime,
) -> None:
    with fault_server() as server:
        script = handler(server).data_replies
        for i in range(14):
            script[f"reader{i:05d}@example.org"] = ["450 4.2.0 Mailbox busy"] * 50
        ctx = prepared(any_context, server, 30, failure_window=20, max_attempts=50, batch_size=10)
        first = dispatch.send_now(ctx, clock=clock_from(NOW)).counters
        assert first.paused_reason is not None and edition_status(ctx) == "paused"
        with db.transaction(ctx.sessions) as session:
            failures = session.scalar(select(func.count()).where(DeliveryAttempt.ok.is_(False)))
        assert failures and failures > 1

        script.clear()  # the relay is fine again: one run sends the rest
        again = dispatch.send_now(ctx, clock=clock_from(NOW))
        assert again.resumed and again.counters.paused_reason is None
        assert edition_status(ctx) == "done"
    assert received_by(server) == dict.fromkeys(
        [f"reader{i:05d}@example.org" for i in range(30)], 1
    )


def test_backoff_waits_are_shown_on_the_progress_line(context: Runtime) -> None:
    with fault_server() as server:
        handler(server).data_replies["reader00001@example.org"] = ["451 4.7.1 Greylisted"]
        ctx = prepared(context, server, 3, retry_base_seconds=1)
        shown: list[str] = []

        def progress(counters: Counters) -> None:
            if counters.waiting and counters.waiting not in shown:
                shown.append(counters.waiting)

        result = dispatch.send_now(ctx, clock=clock_from(NOW), progress=progress)
    assert result.counters.sent == 3
    assert shown == ["waiting 1 s to retry 1 delivery (last error: SMTP 451 4.7.1 Greylisted)"]
