"""The admin's services on SQLite and on PostgreSQL: the overview's numbers, a reader's
export and erasure, and pausing an edition by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from newsletter import status
from newsletter.delivery import control, dispatch
from newsletter.errors import InvalidInput, NotFound
from newsletter.mail.capture import CaptureServer
from newsletter.readers import records
from newsletter.runtime import Runtime
from newsletter.store import db
from newsletter.store import returns as returns_store
from newsletter.store.models import (
    Delivery,
    DeliveryAttempt,
    DeliveryPaper,
    InboundMessage,
    MailEvent,
    Subscriber,
    SubscriberTopic,
)
from newsletter.store.statuses import MailEventKind, MailEventSource
from tests.admin_support import add_fresh_papers
from tests.delivery_helpers import add_readers, configured


def _sent(any_context: Runtime, smtp_server: CaptureServer, readers: int) -> Runtime:
    context = configured(any_context, smtp_server)
    add_readers(context, readers)
    add_fresh_papers(context)
    assert dispatch.send_now(context).counters.sent == readers
    return context


def test_the_overview_counts_readers_sending_speed_and_returns(
    any_context: Runtime, smtp_server: CaptureServer
) -> None:
    context = _sent(any_context, smtp_server, readers=4)
    now = datetime.now(UTC)
    with db.transaction(context.sessions) as session:
        target = returns_store.target_of_email(session, "reader00000@example.org")
        kind, source = MailEventKind.HARD_BOUNCE, MailEventSource.SMTP
        returns_store.add_event(session, kind, source, target, "550 no such user", now)
    found = status.overview(context, now + timedelta(seconds=1))
    assert found.readers.by_status["active"] == 4
    assert dict((slug, n) for slug, _, n in found.readers.by_topic)["llms"] == 4
    assert [n for _, n in found.readers.growth][-1] == 4
    assert found.returns.sent == 4 and found.returns.bounce_rate == 0.25
    current = found.report.current
    assert current is not None and current.span is not None
    assert current.span.sent == 4 and current.span.seconds >= 0
    assert current.returned.hard_bounces == 1
    assert found.editions[0] is current


def test_erasing_a_reader_leaves_no_row_of_theirs(
    any_context: Runtime, smtp_server: CaptureServer
) -> None:
    context = _sent(any_context, smtp_server, readers=2)
    now = datetime.now(UTC)
    with db.transaction(context.sessions) as session:
        target = returns_store.target_of_email(session, "reader00000@example.org")
        kind, source = MailEventKind.COMPLAINT, MailEventSource.SES
        returns_store.add_event(session, kind, source, target, "abuse report", now)
        raw = b"Subject: stop\r\n\r\nplease stop"
        returns_store.add_inbound(
            session,
            mail_from="Reader00000@example.org",
            rcpt_to=["bounces@example.org"],
            subject="stop",
            reason="not a bounce",
            raw=raw,
            at=now,
        )
    exported = records.export_reader(context, 1)
    assert exported["mail_events"][0]["kind"] == "complaint"
    assert len(exported["deliveries"]) == 1

    counts = records.delete_reader(context, 1)
    assert counts["subscribers"] == 1 and counts["deliveries"] == 1
    assert counts["mail_events"] == 1 and counts["inbound_messages"] == 1
    with db.transaction(context.sessions) as session:
        left = {
            model.__name__: session.scalar(select(func.count()).select_from(model))
            for model in (Subscriber, SubscriberTopic, Delivery, DeliveryPaper, DeliveryAttempt)
        }
        assert session.scalar(select(func.count()).select_from(MailEvent)) == 0
        assert session.scalar(select(func.count()).select_from(InboundMessage)) == 0
    assert left["Subscriber"] == 1 and left["Delivery"] == 1  # the other reader's
    with pytest.raises(NotFound):
        records.delete_reader(context, 1)
    assert [r.info.email for r in records.find_readers(context, "0000")] == [
        "reader00001@example.org"
    ]


def test_pausing_an_edition_by_hand_takes_only_a_sending_one(
    any_context: Runtime, smtp_server: CaptureServer
) -> None:
    context = _sent(any_context, smtp_server, readers=1)
    key = status.report(context).current.key  # type: ignore[union-attr]
    with pytest.raises(InvalidInput, match="done, not sending"):
        control.pause(context, key, "by hand")
    with pytest.raises(NotFound):
        control.resume(context, "1999-W01")
