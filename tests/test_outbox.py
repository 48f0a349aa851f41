"""The worker loop against real aiosmtpd servers with injected faults."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from newsletter.delivery import dispatch
from newsletter.delivery.outcomes import Counters
from newsletter.mail.capture import CaptureServer
from newsletter.planning import planner
from newsletter.readers import subscriptions
from newsletter.runtime import Runtime
from newsletter.store import db
from newsletter.store.models import Delivery, DeliveryAttempt, Edition, Subscriber
from tests.delivery_helpers import (
    IN_WINDOW,
    NOW,
    add_papers,
    add_readers,
    clock_from,
    configured,
    received_by,
)
from tests.smtp_faults import FaultHandler, fault_server

FAST = {"retry_base_seconds": 0.01, "max_attempts": 3, "bounce_after": 2}


@pytest.fixture
def faulty() -> Iterator[CaptureServer]:
    with fault_server() as server:
        yield server


def handler(server: CaptureServer) -> FaultHandler:
    assert isinstance(server.handler, FaultHandler)
    return server.handler


def prepared(
    context: Runtime, server: CaptureServer, readers: int = 5, **delivery: object
) -> Runtime:
    ctx = configured(context, server, smtp={"connections": 2}, delivery={**FAST, **delivery})
    add_papers(ctx)
    add_readers(ctx, readers)
    planner.plan_edition(ctx, NOW)
    return ctx


def send(ctx: Runtime) -> Counters:
    return dispatch.send_now(ctx, clock=clock_from(NOW)).counters


def statuses(ctx: Runtime) -> dict[str, str]:
    with db.transaction(ctx.sessions) as session:
        rows = session.execute(select(Subscriber.email, Delivery.status).join(Delivery))
        return {email: status for email, status in rows}


def test_a_4xx_reply_is_retried_and_the_message_delivered_once(
    context: Runtime, faulty: CaptureServer
) -> None:
    handler(faulty).data_replies["reader00001@example.org"] = ["451 4.7.1 Greylisted"]
    ctx = prepared(context, faulty)
    counters = send(ctx)
    received = received_by(faulty)
    assert received["reader00001@example.org"] == 1
    assert set(received.values()) == {1} and len(received) == 5
    assert counters.retried == 1 and counters.sent == 5
    with db.transaction(ctx.sessions) as session:
        attempts = session.scalars(select(DeliveryAttempt.ok).order_by(DeliveryAttempt.id)).all()
    assert sorted(attempts) == [False, True, True, True, True, True]


def reader(ctx: Runtime, email: str) -> Subscriber:
    with db.transaction(ctx.sessions) as session:
        found = session.scalar(select(Subscriber).where(Subscriber.email == email))
        assert found is not None
        return found


def test_a_5xx_reply_fails_at_once_and_bounces_the_reader_after_the_limit(
    context: Runtime, faulty: CaptureServer
) -> None:
    bad = "reader00002@example.org"
    handler(faulty).data_replies[bad] = ["550 5.1.1 No such user"] * 5
    ctx = prepared(context, faulty)
    counters = send(ctx)
    assert handler(faulty).refused == [bad]  # no retry
    assert statuses(ctx)[bad] == "failed"
    assert counters.failed == 1 and counters.bounced == 0
    assert reader(ctx, bad).hard_bounces == 1 and reader(ctx, bad).status == "active"
    # The next week's edition bounces again (bounce_after: 2): the reader is bounced.
    later = NOW + timedelta(days=7)
    add_papers(ctx, 30, IN_WINDOW + timedelta(days=7))
    counters = dispatch.send_now(ctx, clock=clock_from(later)).counters
    assert counters.bounced == 1 and reader(ctx, bad).status == "bounced"
    # and a third edition does not even plan a delivery for them.
    add_papers(ctx, 30, IN_WINDOW + timedelta(days=14))
    plan = planner.plan_edition(ctx, NOW + timedelta(days=14))
    assert plan.planned == 4


def test_a_421_and_a_dropped_connection_mid_batch_lose_nothing(
    context: Runtime, faulty: CaptureServer
) -> None:
    handler(faulty).mail_faults.update({4: "421", 9: "drop", 15: "421"})
    ctx = prepared(context, faulty, readers=20)
    counters = send(ctx)
    received = received_by(faulty)
    assert len(received) == 20 and set(received.values()) == {1}
    assert counters.sent == 20 and counters.failed == 0


def test_a_reader_who_unsubscribes_after_planning_is_not_mailed(
    context: Runtime, faulty: CaptureServer
) -> None:
    ctx = prepared(context, faulty)
    subscriptions.unsubscribe(ctx, "reader00003@example.org")
    counters = send(ctx)
    assert "reader00003@example.org" not in received_by(faulty)
    assert statuses(ctx)["reader00003@example.org"] == "skipped"
    assert counters.skipped == 1 and counters.sent == 4


def test_too_many_failures_pause_the_edition_and_send_now_resumes_it(
    context: Runtime, faulty: CaptureServer
) -> None:
    script = handler(faulty).data_replies
    for i in range(12):
        script[f"reader{i:05d}@example.org"] = ["450 4.2.0 Mailbox busy"] * 10
    ctx = prepared(context, faulty, readers=30, failure_window=10, max_attempts=9)
    ctx_small = configured(ctx, faulty, delivery={"batch_size": 10})
    counters = send(ctx_small)
    assert (
        counters.paused_reason is not None
        and "of the last 10 deliveries failed" in counters.paused_reason
    )
    with db.transaction(ctx.sessions) as session:
        edition = session.scalars(select(Edition)).one()
        assert edition.status == "paused"
    script.clear()
    result = dispatch.send_now(ctx_small, clock=clock_from(NOW))
    assert result.resumed
    assert len(received_by(faulty)) == 30 and set(received_by(faulty).values()) == {1}


def test_a_stop_request_releases_deliveries_not_yet_sent(
    context: Runtime, faulty: CaptureServer
) -> None:
    ctx = prepared(context, faulty, readers=10)
    stop = threading.Event()

    def progress(counters: Counters) -> None:
        if counters.sent >= 2:
            stop.set()

    ctx_one = configured(ctx, faulty, smtp={"connections": 1})
    counters = dispatch.send_now(
        ctx_one, stop=stop, progress=progress, clock=clock_from(NOW)
    ).counters
    assert counters.sent == 2 and counters.released == 8
    assert list(statuses(ctx).values()).count("queued") == 8
    send(ctx)
    assert len(received_by(faulty)) == 10 and set(received_by(faulty).values()) == {1}


def test_readers_who_unsubscribe_while_their_delivery_is_claimed_are_not_mailed(
    any_context: Runtime,
) -> None:
    with fault_server() as server:
        handler(server).delay = 0.3  # a slow relay: the batch stays claimed a while
        ctx = configured(any_context, server, smtp={"connections": 1}, delivery=FAST)
        add_papers(ctx)
        emails = add_readers(ctx, 8)
        planner.plan_edition(ctx, NOW)
        staying, leaving = emails[:4], emails[4:]
        left: list[str] = []

        def progress(counters: Counters) -> None:
            if counters.sent == 1 and not left:  # every delivery is claimed by now
                for email in leaving:
                    subscriptions.unsubscribe(ctx, email)
                left.extend(leaving)

        counters = dispatch.send_now(ctx, clock=clock_from(NOW), progress=progress).counters
    assert left == leaving
    assert set(received_by(server)) == set(staying)
    assert {statuses(ctx)[email] for email in leaving} == {"skipped"}
    assert (counters.sent, counters.skipped) == (4, 4)
