"""A running `newsletter inbound` server for the tests, and an SMTP client for it."""

from __future__ import annotations

import smtplib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from newsletter.returns.server import InboundServer
from newsletter.runtime import Runtime


@dataclass
class Running:
    server: InboundServer
    lines: list[str] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.server.port


@contextmanager
def inbound_server(context: Runtime, *, lmtp: bool = False) -> Iterator[Running]:
    """The real server of `newsletter inbound` on a free loopback port, in a thread."""
    lines: list[str] = []
    server = InboundServer(context, "127.0.0.1", 0, lmtp=lmtp, report=lines.append)
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            server.serve(stop)
        except BaseException as exc:  # shown by the test, not lost in the thread
            errors.append(exc)
            server.ready.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert server.ready.wait(10), "the inbound server did not start"
    assert not errors, errors
    try:
        yield Running(server, lines)
    finally:
        stop.set()
        thread.join(10)


@dataclass(frozen=True)
class Reply:
    code: int
    text: str


def deliver(port: int, recipients: list[str], data: bytes, mail_from: str = "") -> Reply:
    """One SMTP transaction as an MTA makes it (null sender for bounces): the reply to
    DATA, or the first refusal before it."""
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
        client.ehlo("mta.example.net")
        code, text = client.mail(mail_from)
        if code != 250:
            return Reply(code, text.decode())
        for recipient in recipients:
            code, text = client.rcpt(recipient)
            if code != 250:
                return Reply(code, text.decode())
        code, text = client.data(data)
        return Reply(code, text.decode())
