"""`newsletter inbound`: bounces, complaints and unsubscribe mail received over real
SMTP from a real aiosmtpd server, about digests sent through the real pipeline."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email import message_from_bytes
from pathlib import Path

import pytest
from sqlalchemy import select, text

from newsletter.mail.capture import Received
from newsletter.mail.verp import ReturnAddresses
from newsletter.runtime import Runtime
from newsletter.store import db
from newsletter.store.models import Delivery, InboundMessage, MailEvent, Subscriber
from newsletter.tokens import make_address_token
from tests.bounce_samples import arf_for, dsn_for, sample
from tests.conftest import CliResult, make_settings
from tests.delivery_helpers import add_papers, add_readers
from tests.inbound_support import Running, deliver, inbound_server
from tests.process_helpers import current_window_instant, start
from tests.smtp_faults import FaultHandler, fault_server

SENDER = {"from_address": "digest@papers.example.org", "from_name": "Trending Papers"}
REFUSED = "reader00003@example.org"  # its digest gets a 5xx during the SMTP session


@dataclass
class Site:
    context: Runtime  # the store, with the settings the config file gives
    config: Path
    sent: dict[str, Received]  # reader → the digest the relay accepted
    cli: Callable[..., CliResult]

    def delivery_of(self, email: str) -> int:
        with db.transaction(self.context.sessions) as session:
            found = session.scalar(
                select(Delivery.id).join(Subscriber).where(Subscriber.email == email)
            )
        assert found is not None
        return found

    def events(self) -> list[tuple[str, str, int | None, str | None]]:
        """(kind, reader, delivery, detail) of every mail event, oldest first."""
        with db.transaction(self.context.sessions) as session:
            rows = session.execute(
                select(MailEvent.kind, Subscriber.email, MailEvent.delivery_id, MailEvent.source)
                .join(Subscriber, MailEvent.subscriber_id == Subscriber.id)
                .order_by(MailEvent.id)
            )
            return [tuple(r) for r in rows]  # type: ignore[misc]

    def reader(self, email: str) -> tuple[str, int]:
        with db.transaction(self.context.sessions) as session:
            row = session.execute(
                select(Subscriber.status, Subscriber.hard_bounces).where(Subscriber.email == email)
            ).one()
            return row.status, row.hard_bounces

    def stored(self) -> list[tuple[str, str, int]]:
        with db.transaction(self.context.sessions) as session:
            rows = session.execute(
                select(InboundMessage.rcpt_to, InboundMessage.reason, InboundMessage.size)
            )
            return [tuple(r) for r in rows]  # type: ignore[misc]

    def statuses(self) -> dict[str, str]:
        """What `newsletter subscribers --json` says of each reader."""
        result = self.cli("subscribers", "--json")
        assert result.exit_code == 0, result.stderr
        return {row["email"]: row["status"] for row in json.loads(result.stdout)}


@pytest.fixture
def site(
    sqlite_url: str,
    config_file: Callable[..., Path],
    run_cli: Callable[..., CliResult],
) -> Iterator[Site]:
    """Five readers were sent this week's digest by `newsletter send-now`; the relay
    refused one of them with a 5xx (a hard bounce during the session)."""
    sections = {
        "sender": SENDER,
        "delivery": {"bounce_after": 2, "failure_threshold": 1.0, "retry_base_seconds": 0.01},
        "matching": {"semantic": "off"},
    }
    context = Runtime(make_settings(sqlite_url, **sections))
    db.upgrade(context.engine)
    with fault_server() as relay:
        handler = relay.handler
        assert isinstance(handler, FaultHandler)
        handler.data_replies[REFUSED] = ["550 5.1.1 <reader00003@example.org>: no such user"]
        config = config_file(smtp={"host": relay.host, "port": relay.port}, **sections)
        add_papers(context, 12, current_window_instant(context))
        add_readers(context, 5)
        cli: Callable[..., CliResult] = lambda *a: run_cli("--config", str(config), *a)  # noqa: E731
        result = cli("send-now")
        assert result.exit_code == 0, result.stdout + result.stderr
        sent = {m.recipients[0]: m for m in relay.messages}
    assert len(sent) == 4 and REFUSED not in sent
    yield Site(context, config, sent, cli)
    context.close()


@pytest.fixture
def inbound(site: Site) -> Iterator[Running]:
    with inbound_server(site.context) as running:
        yield running


def verp_of(site: Site, reader: str) -> str:
    """The envelope sender a digest to `reader` had (or would have had)."""
    token = make_address_token(site.context.secret_key, "bounce", site.delivery_of(reader))
    return ReturnAddresses.of(site.context.settings.bounce_address).bounce_for(token)


def mailto_of(received: Received) -> str:
    header = str(message_from_bytes(received.data)["List-Unsubscribe"])
    found = re.search(r"<mailto:([^?>]+)", header)
    assert found, header
    return found[1]


def test_every_digest_returns_to_a_verp_address_naming_its_delivery(site: Site) -> None:
    for reader, received in site.sent.items():
        delivery = site.delivery_of(reader)
        assert re.fullmatch(
            rf"bounces\+d{delivery}-[a-z2-7]{{16}}@papers\.example\.org", received.mail_from
        )
        assert re.fullmatch(
            r"unsubscribe\+s\d+-[a-z2-7]{16}@papers\.example\.org", mailto_of(received)
        )


def test_a_hard_bounce_by_mail_counts_toward_bounce_after_like_a_5xx_in_the_session(
    site: Site, inbound: Running
) -> None:
    reader = "reader00000@example.org"
    verp = site.sent[reader].mail_from
    reply = deliver(inbound.port, [verp], dsn_for(site.sent[reader].data, reader, msg_id="b1@mta"))
    assert reply.code == 250
    assert site.reader(reader) == ("active", 1)  # one of the two bounce_after allows
    # The relay's 5xx counted once already: one bounce by mail makes it two.
    assert site.reader(REFUSED) == ("active", 1)
    reply = deliver(inbound.port, [verp_of(site, REFUSED)], sample("gmail-hard.eml", REFUSED))
    assert reply.code == 250
    assert site.reader(REFUSED) == ("bounced", 2)
    # A second, different report about the first reader reaches the limit too.
    exim = sample("exim-hard.eml", reader)
    assert deliver(inbound.port, [verp.upper()], exim).code == 250  # a relay that shouts
    statuses = site.statuses()
    assert statuses[reader] == "bounced" and statuses[REFUSED] == "bounced"
    assert statuses["reader00001@example.org"] == "active"
    kinds = [(kind, email, source) for kind, email, _, source in site.events()]
    assert kinds == [
        ("hard_bounce", REFUSED, "smtp"),
        ("hard_bounce", reader, "inbound"),
        ("hard_bounce", REFUSED, "inbound"),
        ("hard_bounce", reader, "inbound"),
    ]
    assert any(line.startswith(f"hard bounce: {reader}") for line in inbound.lines)
    assert any("now bounced" in line for line in inbound.lines)


def test_a_soft_bounce_is_recorded_and_does_not_count(site: Site, inbound: Running) -> None:
    reader = "reader00001@example.org"
    delayed = sample("postfix-delayed.eml", reader)
    assert deliver(inbound.port, [site.sent[reader].mail_from], delayed).code == 250
    assert site.reader(reader) == ("active", 0)
    assert ("soft_bounce", reader, site.delivery_of(reader), "inbound") in site.events()


def test_the_same_bounce_delivered_twice_counts_once(site: Site, inbound: Running) -> None:
    reader = "reader00002@example.org"
    report = dsn_for(site.sent[reader].data, reader, msg_id="twice@mta")
    for _ in range(2):
        assert deliver(inbound.port, [site.sent[reader].mail_from], report).code == 250
    assert site.reader(reader) == ("active", 1)
    assert [e for e in site.events() if e[1] == reader] == [
        ("hard_bounce", reader, site.delivery_of(reader), "inbound")
    ]
    assert inbound.lines[-1] == f"seen: {reader} (already recorded)"


def test_a_complaint_unsubscribes_the_reader_at_once_and_is_recorded(
    site: Site, inbound: Running
) -> None:
    reader = "reader00001@example.org"
    report = arf_for(site.sent[reader].data, msg_id="complaint@fbl.example.net")
    assert deliver(inbound.port, ["bounces@papers.example.org"], report).code == 250
    assert site.reader(reader) == ("unsubscribed", 0)
    assert [e[0] for e in site.events() if e[1] == reader] == ["complaint"]
    assert site.statuses()[reader] == "unsubscribed"
    assert inbound.lines[-1].startswith(f"complaint: {reader} (feedback-type abuse")


def test_a_report_to_the_plain_address_naming_a_reader_only_by_address_changes_nothing(
    site: Site, inbound: Running
) -> None:
    """Anyone can write to bounces@ and name any address: without a token we signed
    in the quoted original, the report is kept for the admin and applied to nobody."""
    reader = "reader00001@example.org"
    for name in ("arf-abuse.eml", "gmail-hard.eml"):
        report = sample(name, reader)
        assert deliver(inbound.port, ["bounces@papers.example.org"], report).code == 250
    assert site.reader(reader) == ("active", 0)
    assert [e for e in site.events() if e[3] == "inbound"] == []
    reasons = {reason for _, reason, _ in site.stored()}
    assert reasons == {"names its reader without a signed token: not applied"}


def test_mail_to_the_signed_unsubscribe_address_unsubscribes_that_reader(
    site: Site, inbound: Running
) -> None:
    reader = "reader00002@example.org"
    mail = b"From: someone@example.org\r\nSubject: unsubscribe\r\nMessage-ID: <u1@x>\r\n\r\n\r\n"
    assert (
        deliver(inbound.port, [mailto_of(site.sent[reader])], mail, "someone@example.org").code
        == 250
    )
    assert site.reader(reader)[0] == "unsubscribed"
    assert [e[0] for e in site.events() if e[1] == reader] == ["unsubscribe"]
    assert inbound.lines[-1].startswith(f"unsubscribe: {reader}")
    assert {s for r, s in site.statuses().items() if r != reader} == {"active"}


def test_a_forged_unsubscribe_address_unsubscribes_nobody_and_is_stored(
    site: Site, inbound: Running
) -> None:
    genuine = mailto_of(site.sent["reader00002@example.org"])
    # Another reader's id with this reader's signature, and a made-up signature.
    victim_id = re.search(r"\+s(\d+)-", mailto_of(site.sent["reader00000@example.org"]))
    assert victim_id
    forged = re.sub(r"\+s\d+-", f"+s{victim_id[1]}-", genuine)
    made_up = f"unsubscribe+s{victim_id[1]}-aaaaaaaaaaaaaaaa@papers.example.org"
    mail = b"Subject: unsubscribe\r\n\r\nplease\r\n"
    for address in (forged, made_up):
        assert deliver(inbound.port, [address], mail).code == 250
    assert set(site.statuses().values()) == {"active"}
    assert site.events() == [("hard_bounce", REFUSED, site.delivery_of(REFUSED), "smtp")]
    reasons = [reason for _, reason, _ in site.stored()]
    assert reasons == ["unsubscribe address with a bad signature: nobody was unsubscribed"] * 2


def test_mail_that_is_no_report_is_stored_for_the_admin_not_dropped(
    site: Site, inbound: Running
) -> None:
    vacation = sample("vacation.eml", "reader00000@example.org")
    assert deliver(inbound.port, ["bounces@papers.example.org"], vacation).code == 250
    hello = b"From: a@example.net\r\nSubject: hello\r\n\r\nAre you there?\r\n"
    assert deliver(inbound.port, ["editor@papers.example.org"], hello, "a@example.net").code == 250
    # An auto-reply to a digest's own VERP address reports no failure: kept too.
    verp = site.sent["reader00000@example.org"].mail_from
    assert deliver(inbound.port, [verp], vacation).code == 250
    assert site.stored() == [
        ("bounces@papers.example.org", "names no failed delivery", len(vacation)),
        (
            "editor@papers.example.org",
            "not addressed to the bounce or unsubscribe address",
            len(hello),
        ),
        (verp, "names no failed delivery", len(vacation)),
    ]
    assert site.events()[1:] == []
    assert inbound.lines[-2] == (
        "stored for the admin: #2, to editor@papers.example.org: "
        "not addressed to the bounce or unsubscribe address"
    )


def test_a_bounce_to_a_forged_verp_address_counts_nothing_and_is_stored(
    site: Site, inbound: Running
) -> None:
    reader = "reader00000@example.org"
    forged = re.sub(r"-[a-z2-7]{16}@", "-aaaaaaaaaaaaaaaa@", site.sent[reader].mail_from)
    assert deliver(inbound.port, [forged], sample("postfix-hard.eml", reader)).code == 250
    assert site.reader(reader) == ("active", 0)
    assert [reason for _, reason, _ in site.stored()] == ["bounce address with a bad signature"]


def test_mail_for_another_domain_is_refused(site: Site, inbound: Running) -> None:
    reply = deliver(inbound.port, ["someone@elsewhere.example.net"], b"Subject: x\r\n\r\nx\r\n")
    assert reply.code == 550
    assert site.stored() == []


def test_a_message_over_the_size_limit_gets_552_and_the_server_carries_on(
    site: Site, inbound: Running
) -> None:
    limit = site.context.settings.bounces.max_message_bytes
    huge = b"Subject: big\r\n\r\n" + (b"x" * 70 + b"\r\n") * (limit // 72 + 10)
    reply = deliver(inbound.port, ["bounces@papers.example.org"], huge)
    assert reply.code == 552
    assert site.stored() == []
    small = b"Subject: small\r\n\r\nhello\r\n"
    assert deliver(inbound.port, ["bounces@papers.example.org"], small).code == 250


def test_malformed_mime_is_stored_with_a_clean_reply(site: Site, inbound: Running) -> None:
    broken = sample("malformed.eml") + b"\xff\xfe binary \x00 junk\r\n"
    assert deliver(inbound.port, ["bounces@papers.example.org"], broken).code == 250
    [(_, reason, size)] = site.stored()
    assert reason == "names no failed delivery (malformed MIME)" and size == len(broken)


def test_a_store_that_cannot_be_written_answers_451_so_the_mta_retries(
    site: Site, inbound: Running
) -> None:
    report = sample("vacation.eml")
    with site.context.engine.begin() as connection:
        connection.execute(text("ALTER TABLE inbound_messages RENAME TO kept_aside"))
    reply = deliver(inbound.port, ["bounces@papers.example.org"], report)
    assert reply.code == 451
    assert inbound.lines[-1].startswith("deferred: the store is unavailable")
    with site.context.engine.begin() as connection:
        connection.execute(text("ALTER TABLE kept_aside RENAME TO inbound_messages"))
    assert deliver(inbound.port, ["bounces@papers.example.org"], report).code == 250
    assert len(site.stored()) == 1


def test_lmtp_is_spoken_with_the_lmtp_flag(site: Site) -> None:
    import smtplib

    reader = "reader00000@example.org"
    report = dsn_for(site.sent[reader].data, reader, msg_id="l@x")
    with (
        inbound_server(site.context, lmtp=True) as running,
        smtplib.LMTP("127.0.0.1", running.port) as client,
    ):
        refused = client.sendmail("", [site.sent[reader].mail_from], report)
    assert refused == {}
    assert site.reader(reader) == ("active", 1)


def test_a_sent_digest_bounced_and_reported_comes_back_through_newsletter_inbound(
    site: Site, inbound: Running
) -> None:
    """End to end: the envelope senders the relay saw, a bounce to one, an abuse
    report (recipient redacted) about another to the plain bounce address."""
    bounced, complained = "reader00000@example.org", "reader00004@example.org"
    first, second = site.sent[bounced], site.sent[complained]
    bounce = dsn_for(first.data, bounced, msg_id="e2e-dsn@mx.example.org")
    assert deliver(inbound.port, [first.mail_from], bounce).code == 250
    report = arf_for(second.data, msg_id="e2e-arf@fbl.example.net")
    assert b"reader00004" in second.data and b"Original-Rcpt-To" not in report
    assert deliver(inbound.port, ["bounces@papers.example.org"], report).code == 250
    events = site.events()
    assert ("hard_bounce", bounced, site.delivery_of(bounced), "inbound") in events
    assert ("complaint", complained, site.delivery_of(complained), "inbound") in events
    assert site.reader(bounced) == ("active", 1)
    assert site.statuses()[complained] == "unsubscribed"
    assert site.stored() == []


def test_newsletter_inbound_prints_a_line_per_message_and_stops_on_sigterm(
    site: Site, tmp_path: Path
) -> None:
    import signal
    import socket
    import time

    from newsletter.mail.capture import _free_port

    port = _free_port()
    log = tmp_path / "inbound.log"
    process = start(site.config, "inbound", "--port", str(port), log=log)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        reader = "reader00002@example.org"
        mail = b"Subject: unsubscribe\r\n\r\n\r\n"
        assert deliver(port, [mailto_of(site.sent[reader])], mail).code == 250
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    lines = log.read_text().splitlines()
    assert lines[0] == (
        f"Receiving SMTP on 127.0.0.1:{port} for bounces@papers.example.org and "
        "unsubscribe@papers.example.org (Ctrl-C stops)."
    )
    assert lines[1] == f"unsubscribe: {reader} (mail to the List-Unsubscribe address; unsubscribed)"
    assert lines[-1] == "Stopped."


def test_newsletter_inbound_on_a_port_in_use_is_a_one_line_error(site: Site) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = site.cli("inbound", "--port", str(port))
    assert result.exit_code == 1
    assert result.stderr.strip() == f"Error: cannot listen on 127.0.0.1:{port}: the port is in use"


def test_a_feedback_loop_report_sent_to_the_verp_address_is_a_complaint_about_that_delivery(
    site: Site, inbound: Running
) -> None:
    reader = "reader00001@example.org"
    # The provider redacted the recipient and quotes only unrelated headers.
    report = arf_for(b"Subject: something\r\n\r\nx\r\n", msg_id="fbl-verp@fbl.example.net")
    assert deliver(inbound.port, [site.sent[reader].mail_from], report).code == 250
    assert ("complaint", reader, site.delivery_of(reader), "inbound") in site.events()
    assert site.reader(reader)[0] == "unsubscribed"
