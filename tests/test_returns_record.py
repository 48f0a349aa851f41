"""What comes back after sending is applied the same whatever the way in: the record
service against real stores (SQLite and PostgreSQL) after a real send."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from newsletter.mail.capture import CaptureServer
from newsletter.planning import planner
from newsletter.returns import record
from newsletter.returns.events import ReturnEvent
from newsletter.runtime import Runtime
from newsletter.store import db
from newsletter.store import returns as returns_store
from newsletter.store.models import Delivery, MailEvent, Subscriber
from newsletter.store.statuses import MailEventKind, MailEventSource
from tests.delivery_helpers import NOW, add_papers, add_readers, configured
from tests.smtp_faults import fault_server
from tests.test_outbox import handler, prepared, send

HARD = MailEventKind.HARD_BOUNCE
SOFT = MailEventKind.SOFT_BOUNCE


@pytest.fixture
def sent(any_context: Runtime, smtp_server: CaptureServer) -> Runtime:
    """Three readers who each got this week's digest; bounce_after is 2."""
    ctx = configured(any_context, smtp_server, delivery={"bounce_after": 2})
    add_papers(ctx)
    add_readers(ctx, 3)
    planner.plan_edition(ctx, NOW)
    assert send(ctx).sent == 3
    return ctx


def deliveries(ctx: Runtime) -> dict[str, tuple[int, str]]:
    """email → (delivery id, Message-ID)."""
    with db.transaction(ctx.sessions) as session:
        rows = session.execute(
            select(Subscriber.email, Delivery.id, Delivery.message_id).join(
                Delivery, Delivery.subscriber_id == Subscriber.id
            )
        )
        return {email: (delivery, message_id) for email, delivery, message_id in rows}


def reader(ctx: Runtime, email: str) -> tuple[str, int]:
    with db.transaction(ctx.sessions) as session:
        row = session.execute(
            select(Subscriber.status, Subscriber.hard_bounces).where(Subscriber.email == email)
        ).one()
        return row.status, row.hard_bounces


def event(kind: MailEventKind, **clues: object) -> ReturnEvent:
    return ReturnEvent(kind, MailEventSource.INBOUND, **clues)  # type: ignore[arg-type]


def test_a_hard_bounce_by_delivery_id_counts_toward_bounce_after(sent: Runtime) -> None:
    email = "reader00000@example.org"
    delivery_id, _ = deliveries(sent)[email]
    first = record.apply(sent, [event(HARD, delivery_id=delivery_id, key="dsn-1")])
    assert first[0].recorded and not first[0].bounced
    assert reader(sent, email) == ("active", 1)
    second = record.apply(sent, [event(HARD, delivery_id=delivery_id, key="dsn-2")])
    assert second[0].bounced
    assert reader(sent, email) == ("bounced", 2)


def test_the_same_report_twice_counts_once(sent: Runtime) -> None:
    email = "reader00001@example.org"
    _, message_id = deliveries(sent)[email]
    bare = message_id.strip("<>")  # webhooks echo the id without its brackets
    assert record.apply(sent, [event(HARD, message_id=bare, key="evt-7")])[0].recorded
    again = record.apply(sent, [event(HARD, message_id=bare, key="evt-7")])
    assert not again[0].recorded and again[0].target is not None
    assert reader(sent, email) == ("active", 1)


def test_a_soft_bounce_is_recorded_but_not_counted(sent: Runtime) -> None:
    email = "reader00002@example.org"
    [applied] = record.apply(sent, [event(SOFT, email=email.upper(), detail="4.2.2 full")])
    assert applied.recorded and applied.target is not None
    assert applied.target.delivery_id == deliveries(sent)[email][0]
    assert reader(sent, email) == ("active", 0)


def test_a_complaint_unsubscribes_the_reader_at_once(sent: Runtime) -> None:
    email = "reader00000@example.org"
    [applied] = record.apply(sent, [event(MailEventKind.COMPLAINT, email=email)])
    assert applied.unsubscribed
    assert reader(sent, email) == ("unsubscribed", 0)
    with db.transaction(sent.sessions) as session:
        counts = returns_store.event_counts(session)
        assert counts.complaints == 1 and returns_store.sent_since(session) == 3


def test_an_unknown_recipient_is_not_recorded(sent: Runtime) -> None:
    [applied] = record.apply(sent, [event(HARD, email="stranger@example.net")])
    assert applied.target is None and not applied.recorded
    with db.transaction(sent.sessions) as session:
        assert session.scalars(select(MailEvent)).all() == []


def test_a_refusal_in_the_smtp_session_is_recorded_like_one_by_mail(
    any_context: Runtime,
) -> None:
    with fault_server() as server:
        handler(server).data_replies["reader00000@example.org"] = ["550 5.1.1 No such user"]
        ctx = prepared(any_context, server, readers=2)
        send(ctx)
    with db.transaction(ctx.sessions) as session:
        [row] = session.scalars(select(MailEvent)).all()
        assert (row.kind, row.source) == (HARD, MailEventSource.SMTP)
        assert (
            returns_store.event_counts_by_edition(session, [row.edition_id or 0])[
                row.edition_id or 0
            ].hard_bounces
            == 1
        )
