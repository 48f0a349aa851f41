"""Recorded bounce and complaint samples (tests/fixtures/bounces) and messages built
around real digests, for the inbound tests."""

from __future__ import annotations

import email
from email.message import Message
from pathlib import Path

SAMPLES = Path(__file__).parent / "fixtures" / "bounces"


def sample(name: str, reader: str = "reader@example.org") -> bytes:
    """A sample as it arrives over SMTP (CRLF line ends), about `reader`."""
    text = (SAMPLES / name).read_text(encoding="utf-8").replace("reader@example.org", reader)
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def parsed(name: str) -> Message:
    return email.message_from_bytes(sample(name))


def parsed_bytes(raw: bytes) -> Message:
    return email.message_from_bytes(raw)


def dsn_for(original: bytes, recipient: str, *, status: str = "5.1.1", msg_id: str) -> bytes:
    """A Postfix-shaped RFC 3464 bounce quoting the headers of `original`."""
    headers = original.split(b"\r\n\r\n", 1)[0].decode("ascii")
    action = "failed" if status.startswith("5") else "delayed"
    return "\r\n".join(
        [
            "From: MAILER-DAEMON@mail.papers.example.org (Mail Delivery System)",
            "To: bounces@papers.example.org",
            "Subject: Undelivered Mail Returned to Sender",
            f"Message-Id: <{msg_id}>",
            "MIME-Version: 1.0",
            'Content-Type: multipart/report; report-type=delivery-status; boundary="B"',
            "",
            "--B",
            "Content-Type: text/plain",
            "",
            f"<{recipient}>: the mail system said no.",
            "--B",
            "Content-Type: message/delivery-status",
            "",
            "Reporting-MTA: dns; mail.papers.example.org",
            "",
            f"Final-Recipient: rfc822; {recipient}",
            f"Action: {action}",
            f"Status: {status}",
            f"Diagnostic-Code: smtp; 550 {status} <{recipient}>: User unknown",
            "",
            "--B",
            "Content-Type: text/rfc822-headers",
            "",
            headers,
            "",
            "--B--",
            "",
        ]
    ).encode("ascii")


def arf_for(original: bytes, *, msg_id: str, recipient: str | None = None) -> bytes:
    """An RFC 5965 abuse report carrying `original` whole; without `recipient` the
    provider redacted it (many do), leaving only the original message's own clues."""
    fields = ["Feedback-Type: abuse", "User-Agent: ExampleFBL/2.1", "Version: 1"]
    if recipient:
        fields.append(f"Original-Rcpt-To: <{recipient}>")
    return b"\r\n".join(
        [
            b"From: <fbl@mailbox.example.net>",
            b"To: <bounces@papers.example.org>",
            b"Subject: FW: abuse report",
            f"Message-ID: <{msg_id}>".encode(),
            b"MIME-Version: 1.0",
            b'Content-Type: multipart/report; report-type=feedback-report; boundary="F"',
            b"",
            b"--F",
            b"Content-Type: text/plain",
            b"",
            b"This is an email abuse report.",
            b"--F",
            b"Content-Type: message/feedback-report",
            b"",
            *[f.encode() for f in fields],
            b"",
            b"--F",
            b"Content-Type: message/rfc822",
            b"",
            original.rstrip(b"\r\n"),
            b"",
            b"--F--",
            b"",
        ]
    )
