"""The fast delivery path: pipelined SMTP, dot-stuffing, group commit, compose processes."""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select

from newsletter.config import SmtpConfig
from newsletter.delivery import dispatch, marks
from newsletter.mail.capture import CaptureHandler, CaptureServer
from newsletter.mail.smtp import SendError, SmtpPool, wire_body
from newsletter.planning import planner
from newsletter.runtime import Runtime
from newsletter.store import claims as claims_mod
from newsletter.store import db, deliveries
from newsletter.store.models import Delivery, DeliveryAttempt
from tests.delivery_helpers import NOW, add_papers, add_readers, clock_from, configured, received_by


class PipeliningHandler(CaptureHandler):
    """Advertises PIPELINING (aiosmtpd reads pipelined commands in order anyway)."""

    def __init__(self) -> None:
        super().__init__()
        self.ehlo_count = 0

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: Any
    ) -> list[str]:
        session.host_name = hostname  # what aiosmtpd's own EHLO would have recorded
        self.ehlo_count += 1
        return [responses[0], "250-PIPELINING", *responses[1:]]

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address.startswith("refused"):
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"


@pytest.fixture
def pipelining() -> Iterator[CaptureServer]:
    with CaptureServer(handler=PipeliningHandler()) as server:
        yield server


def config_for(server: CaptureServer) -> SmtpConfig:
    return SmtpConfig(host=server.host, port=server.port, timeout=5)


def test_pipelined_messages_arrive_intact_with_leading_dots_unstuffed(
    pipelining: CaptureServer,
) -> None:
    bodies = [
        b"Subject: one\r\n\r\n.starts with a dot\r\n..two dots\r\nend\r\n",
        b"Subject: two\r\n\r\nno final line break",
    ]
    with SmtpPool(config_for(pipelining), size=1) as pool:
        for n, body in enumerate(bodies):
            pool.send("papers@example.org", f"r{n}@example.org", body)
    received = pipelining.messages
    assert [m.recipients for m in received] == [("r0@example.org",), ("r1@example.org",)]
    assert received[0].data.endswith(b".starts with a dot\r\n..two dots\r\nend\r\n")
    assert received[1].data.rstrip(b"\r\n").endswith(b"no final line break")
    assert isinstance(pipelining.handler, PipeliningHandler)
    assert pipelining.handler.ehlo_count == 1  # one session reused for both


def test_a_refused_recipient_in_a_pipelined_transaction_fails_only_that_message(
    pipelining: CaptureServer,
) -> None:
    with SmtpPool(config_for(pipelining), size=1) as pool:
        with pytest.raises(SendError) as refused:
            pool.send("papers@example.org", "refused@example.org", b"Subject: x\r\n\r\nx\r\n")
        pool.send("papers@example.org", "good@example.org", b"Subject: y\r\n\r\ny\r\n")
    assert [m.recipients for m in pipelining.messages] == [("good@example.org",)]
    assert refused.value.permanent and refused.value.code == 550  # the address, for good


def test_bare_line_feeds_go_out_as_crlf_and_a_lone_dot_line_is_stuffed() -> None:
    assert wire_body(b"a\nb\r\n.\r\nc") == b"a\r\nb\r\n..\r\nc\r\n.\r\n"
    assert wire_body(b".x\r\n") == b"..x\r\n.\r\n"
    assert wire_body(b"a\rb\r\n") == b"a\r\nb\r\n.\r\n"
    assert wire_body(b"a\rb\n.c\r\n") == b"a\r\nb\r\n..c\r\n.\r\n"  # balanced, yet bare


def _wire_body_by_the_rfc(data: bytes) -> bytes:
    """RFC 5321 4.5.2 spelt out: every line end CRLF, a leading dot doubled, CRLF.CRLF."""
    lines = re.split(rb"\r\n|\n|\r", data)
    if len(lines) > 1 and lines[-1] == b"":  # the end of the last line, not a line
        lines.pop()
    stuffed = [b"." + line if line.startswith(b".") else line for line in lines]
    return b"".join(line + b"\r\n" for line in stuffed) + b".\r\n"


def test_any_mix_of_line_ends_and_dots_goes_out_as_the_rfc_spells_it() -> None:
    rng = random.Random(20261202)
    pieces = [b"\r\n", b"\n", b"\r", b".", b"..", b"a", b"=", b"\r\n.", b"x" * 90]
    for _ in range(5000):
        data = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        assert wire_body(data) == _wire_body_by_the_rfc(data), data


def test_marks_written_together_each_record_their_delivery_once(
    context: Runtime, smtp_server: CaptureServer
) -> None:
    ctx = configured(context, smtp_server)
    add_papers(ctx)
    add_readers(ctx, 12)
    planner.plan_edition(ctx, NOW)
    with db.transaction(ctx.sessions, immediate=True) as session:
        claimed, _ = claims_mod.claim_batch(session, "me", NOW, 300, 100, ignore_schedule=True)
    writer = marks.MarkWriter(ctx)
    threads = [
        threading.Thread(
            target=writer.sent, args=(deliveries.SentMark(d, f"<{d.id}@example.org>", NOW),)
        )
        for d in claimed
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close()
    with db.transaction(ctx.sessions) as session:
        rows = session.execute(select(Delivery.status, Delivery.message_id, Delivery.attempts))
        assert sorted(rows) == sorted(("sent", f"<{d.id}@example.org>", 1) for d in claimed)
        attempts = session.scalars(select(DeliveryAttempt.delivery_id)).all()
    assert sorted(attempts) == sorted(d.id for d in claimed)


def test_composing_in_worker_processes_mails_every_reader_once(
    context: Runtime, pipelining: CaptureServer
) -> None:
    ctx = configured(context, pipelining, delivery={"batch_size": 7})
    add_papers(ctx)
    readers = add_readers(ctx, 40)
    result = dispatch.send_now(ctx, clock=clock_from(NOW), workers=2)
    assert result.counters.sent == 40 and result.counters.failed == 0
    assert received_by(pipelining) == {email: 1 for email in readers}
    with db.transaction(ctx.sessions) as session:
        ids = session.scalars(select(Delivery.message_id)).all()
    assert len(set(ids)) == 40 and all(i and i.startswith("<") for i in ids)
    again = dispatch.send_now(ctx, clock=clock_from(NOW), workers=2)
    assert again.counters.sent == 0 and len(pipelining.messages) == 40


def test_connections_are_shared_by_the_claiming_and_sending_threads_without_loss(
    context: Runtime, pipelining: CaptureServer
) -> None:
    # Small batches: several claims happen while earlier messages are still going out.
    ctx = configured(context, pipelining, smtp={"connections": 3}, delivery={"batch_size": 5})
    add_papers(ctx)
    readers = add_readers(ctx, 60)
    counters = dispatch.send_now(ctx, clock=clock_from(NOW)).counters
    assert counters.sent == 60 and counters.released == 0
    assert received_by(pipelining) == {email: 1 for email in readers}
