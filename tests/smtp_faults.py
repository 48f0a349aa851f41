"""aiosmtpd servers that misbehave on purpose: 4xx, 5xx, 421, dropped connections, slowness."""

from __future__ import annotations

import asyncio
import socket
import socketserver
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from newsletter.mail.capture import CaptureHandler, CaptureServer


class FaultHandler(CaptureHandler):
    """Keeps what it accepts; replies as scripted first.

    `data_replies[rcpt]`: replies given to that recipient's DATA, one per attempt,
    before accepting. `mail_faults[n]`: on the n-th MAIL command overall, "421"
    answers 421 and "drop" closes the connection without a word. `mail_reply`: the
    reply to every MAIL command (a relay refusing our sender, or 421 to everything).
    `delay`: seconds to wait before accepting each message.
    """

    def __init__(self) -> None:
        super().__init__()
        self.data_replies: dict[str, list[str]] = defaultdict(list)
        self.mail_faults: dict[int, str] = {}
        self.mail_commands = 0
        self.mail_reply: str | None = None
        self.delay = 0.0
        self.refused: list[str] = []

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        self.mail_commands += 1
        if self.mail_reply is not None:
            return self.mail_reply
        fault = self.mail_faults.get(self.mail_commands)
        if fault == "drop":
            assert server.transport is not None
            server.transport.close()
            return "421 closing"  # never reaches the client: the socket is gone
        if fault == "421":
            return "421 4.3.2 Service shutting down, try again"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        recipient = envelope.rcpt_tos[0]
        script = self.data_replies.get(recipient)
        if script:
            self.refused.append(recipient)
            return script.pop(0)
        if self.delay:
            await asyncio.sleep(self.delay)
        return await super().handle_DATA(server, session, envelope)


def fault_server() -> CaptureServer:
    return CaptureServer(handler=FaultHandler())


class _Refuse(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.sendall(b"421 4.3.2 Service not available, closing channel\r\n")


class RefusingServer(socketserver.ThreadingTCPServer):
    """A relay that answers every new session with 421 and hangs up."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Refuse)

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def __enter__(self) -> RefusingServer:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


@contextmanager
def closed_port() -> Iterator[int]:
    """A loopback port with nothing listening: connecting is refused at once.

    The socket stays bound (without listening) so no other server takes the port.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])
