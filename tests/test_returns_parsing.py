"""Reading bounces and abuse reports (pure): recorded samples of the formats in the
field, RFC 3464 and RFC 5965, and the heuristics for the rest."""

from __future__ import annotations

import pytest

from newsletter.mail.verp import ReturnAddresses
from newsletter.returns.arf import complaint_events, is_arf
from newsletter.returns.dsn import bounce_events, failures, is_dsn
from newsletter.returns.original import clues_of, original_headers
from newsletter.store.statuses import MailEventKind, MailEventSource
from newsletter.tokens import make_address_token
from tests.bounce_samples import arf_for, dsn_for, parsed, parsed_bytes

SECRET = "test-secret-key-0123456789"
RETURNS = ReturnAddresses.of("bounces@papers.example.org")
ORIGINAL_ID = "<2026-W48.1.0123456789ab@papers.example.org>"


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("postfix-hard.eml", "5.1.1"),
        ("exim-hard.eml", "5.0.0"),
        ("gmail-hard.eml", "5.1.1"),
        ("outlook-hard.eml", "5.1.10"),
    ],
)
def test_rfc3464_bounces_of_the_big_mtas_are_hard_failures_with_their_diagnostic(
    name: str, status: str
) -> None:
    report = parsed(name)
    assert is_dsn(report)
    [failure] = failures(report)
    assert failure.email == "reader@example.org"
    assert failure.hard
    assert failure.detail.startswith(f"failed {status} smtp;")
    assert "550" in failure.detail


def test_a_delayed_delivery_report_is_a_soft_failure() -> None:
    [failure] = failures(parsed("postfix-delayed.eml"))
    assert not failure.hard
    assert "4.2.2" in failure.detail and "Mailbox full" in failure.detail


def test_a_full_mailbox_is_a_soft_failure_even_in_the_permanent_class() -> None:
    original = b"From: p@papers.example.org\r\nMessage-ID: <m@x>\r\n\r\nbody"
    full = dsn_for(original, "reader@example.org", status="5.2.2", msg_id="full@mx")
    unknown = dsn_for(original, "reader@example.org", status="5.1.1", msg_id="gone@mx")
    assert [f.hard for f in failures(parsed_bytes(full))] == [False]
    assert [f.hard for f in failures(parsed_bytes(unknown))] == [True]


@pytest.mark.parametrize("name", ["exim-classic.eml", "qmail-hard.eml"])
def test_bounces_without_rfc3464_fields_are_read_by_the_flufl_heuristics(name: str) -> None:
    report = parsed(name)
    assert not is_dsn(report)
    [failure] = failures(report)
    assert (failure.email, failure.hard) == ("reader@example.org", True)
    assert "detected" in failure.detail


@pytest.mark.parametrize("name", ["vacation.eml", "malformed.eml"])
def test_mail_that_names_no_failure_gives_no_failure(name: str) -> None:
    assert failures(parsed(name)) == []


def test_a_bounce_quoting_our_headers_names_the_message_it_is_about() -> None:
    events = bounce_events(
        parsed("gmail-hard.eml"),
        delivery_id=None,
        returns=RETURNS,
        secret_key=SECRET,
        fallback_key="x",
    )
    [event] = events
    assert event.kind == MailEventKind.HARD_BOUNCE
    assert event.source == MailEventSource.INBOUND
    assert event.message_id == ORIGINAL_ID
    assert event.email == "reader@example.org"
    # The forged-looking VERP token of the sample does not verify: no delivery id.
    assert event.delivery_id is None
    assert event.key == (
        "inbound <65a1b2c3.170a0220.ab12c.9d8eSMTPIN_ADDED_MISSING@mx.google.com> "
        "reader@example.org"
    )


def test_a_verified_delivery_id_from_the_verp_address_wins() -> None:
    [event] = bounce_events(
        parsed("postfix-hard.eml"),
        delivery_id=42,
        returns=RETURNS,
        secret_key=SECRET,
        fallback_key="x",
    )
    assert event.delivery_id == 42


def test_signed_return_path_and_unsubscribe_address_in_a_quoted_original_are_read() -> None:
    bounce = RETURNS.bounce_for(make_address_token(SECRET, "bounce", 17))
    leave = RETURNS.unsubscribe_for(make_address_token(SECRET, "unsubscribe-mail", 5))
    original = (
        f"Return-Path: <{bounce.upper()}>\r\nTo: r@example.org\r\nMessage-ID: <m@x>\r\n"
        f"List-Unsubscribe: <https://papers.example.org/unsubscribe/T>,\r\n"
        f" <mailto:{leave}?subject=unsubscribe>\r\n\r\nbody\r\n"
    ).encode()
    headers = original_headers(parsed_bytes(dsn_for(original, "r@example.org", msg_id="d@x")))
    assert headers is not None
    clues = clues_of(headers, RETURNS, SECRET)
    assert (clues.delivery_id, clues.subscriber_id) == (17, 5)
    assert (clues.message_id, clues.email) == ("<m@x>", "r@example.org")
    assert clues_of(headers, RETURNS, "another-secret-key-012345678").delivery_id is None


def test_an_abuse_report_is_a_complaint_about_the_reader_it_names() -> None:
    report = parsed("arf-abuse.eml")
    assert is_arf(report) and not is_dsn(report)
    [event] = complaint_events(report, returns=RETURNS, secret_key=SECRET, fallback_key="x")
    assert event.kind == MailEventKind.COMPLAINT
    assert event.email == "reader@example.org"
    assert event.message_id == ORIGINAL_ID
    assert "abuse" in event.detail
    assert event.key == "inbound <arf.20261125141200.7c1d@mailbox.example.net> reader@example.org"


def test_a_redacted_abuse_report_still_names_the_delivery_by_its_signed_return_path() -> None:
    bounce = RETURNS.bounce_for(make_address_token(SECRET, "bounce", 23))
    original = f"Return-Path: <{bounce}>\r\nTo: redacted@mailbox.example.net\r\n\r\nx\r\n"
    report = parsed_bytes(arf_for(original.encode(), msg_id="a@x"))
    [event] = complaint_events(report, returns=RETURNS, secret_key=SECRET, fallback_key="x")
    assert event.delivery_id == 23


def test_a_not_spam_report_is_no_complaint() -> None:
    raw = arf_for(b"To: r@example.org\r\n\r\nx\r\n", msg_id="n@x", recipient="r@example.org")
    report = parsed_bytes(raw.replace(b"Feedback-Type: abuse", b"Feedback-Type: not-spam"))
    assert complaint_events(report, returns=RETURNS, secret_key=SECRET, fallback_key="x") == []
