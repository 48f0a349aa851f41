"""The SMTP (or LMTP) server of `newsletter inbound`, on aiosmtpd.

Replies follow what a sending MTA does with them: 550 for an address that is not
ours (it bounces to its sender), 552 for a message over bounces.max_message_bytes,
451 when the store cannot be written (it keeps the message and tries again later),
and 250 only once what the message means is committed.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import threading
from collections.abc import Callable
from typing import Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy.exc import SQLAlchemyError

from newsletter.errors import NewsletterError
from newsletter.returns.inbound import Inbound
from newsletter.runtime import Runtime

log = logging.getLogger(__name__)
Report = Callable[[str], None]


class InboundHandler:
    """aiosmtpd's handler: checks each recipient, hands each message to Inbound."""

    def __init__(self, inbound: Inbound, report: Report, lmtp: bool = False) -> None:
        self.inbound = inbound
        self.report = report
        self.lmtp = lmtp

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if not self.inbound.accepts(address):
            return f"550 5.1.1 <{address}>: no such address here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if len(raw) > self.inbound.max_bytes:  # aiosmtpd's own limit usually answers first
            return self._each(envelope, "552 5.3.4 Message too big for this server")
        mail_from = envelope.mail_from or ""
        try:
            handled = await asyncio.to_thread(
                self.inbound.receive, mail_from, list(envelope.rcpt_tos), raw
            )
        except SQLAlchemyError as exc:
            self.report(f"deferred: the store is unavailable ({type(exc).__name__})")
            return self._each(envelope, "451 4.3.0 Temporary failure, please try again later")
        except Exception:  # a bug must not lose mail: the sender keeps it and retries
            log.exception("inbound message from %s failed", mail_from)
            self.report("deferred: internal error (see the log)")
            return self._each(envelope, "451 4.3.0 Temporary failure, please try again later")
        self.report(handled.line())
        return self._each(envelope, "250 2.0.0 OK")

    def _each(self, envelope: Envelope, reply: str) -> str:
        """LMTP answers DATA once per accepted recipient (RFC 2033); SMTP once."""
        count = len(envelope.rcpt_tos) if self.lmtp else 1
        return "\r\n".join([reply] * max(count, 1))


class InboundServer:
    """Listens on host:port until `stop` is set; `port` 0 picks a free one."""

    def __init__(
        self,
        context: Runtime,
        host: str = "127.0.0.1",
        port: int = 2525,
        *,
        lmtp: bool = False,
        report: Report = lambda line: None,
    ) -> None:
        self.inbound = Inbound(context)
        self.handler = InboundHandler(self.inbound, report, lmtp)
        self.host = host
        self.port = port
        self.lmtp = lmtp
        self.ready = threading.Event()

    def _protocol(self) -> SMTP:
        kind = LMTP if self.lmtp else SMTP
        return kind(
            self.handler,
            # Over the limit, aiosmtpd reads on, discards, and answers 552.
            data_size_limit=self.inbound.max_bytes,
            decode_data=False,
            hostname=self.inbound.returns.domain,
            ident="newsletter inbound",
        )

    def serve(self, stop: threading.Event) -> None:
        """Serve until `stop` is set. NewsletterError when it cannot listen."""
        asyncio.run(self._serve(stop))

    async def _serve(self, stop: threading.Event) -> None:
        loop = asyncio.get_running_loop()
        try:
            server = await loop.create_server(self._protocol, self.host, self.port)
        except OSError as exc:
            why = "the port is in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            raise NewsletterError(f"cannot listen on {self.host}:{self.port}: {why}") from None
        self.port = int(server.sockets[0].getsockname()[1])
        returns = self.inbound.returns
        self.handler.report(
            f"Receiving {'LMTP' if self.lmtp else 'SMTP'} on {self.host}:{self.port} for "
            f"{returns.bounce} and {returns.unsubscribe} (Ctrl-C stops)."
        )
        self.ready.set()
        try:
            while not stop.is_set():  # polled: a blocked waiting thread would outlive Ctrl-C
                await asyncio.sleep(0.2)
        finally:
            server.close()
            await server.wait_closed()
