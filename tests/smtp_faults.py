"""aiosmtpd servers that misbehave on purpose: 4xx, 5xx, 421, dropped connections, slowness."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from newsletter.smtpcapture import CaptureHandler, CaptureServer


class FaultHandler(CaptureHandler):
    """Keeps what it accepts; replies as scripted first.

    `data_replies[rcpt]`: replies given to that recipient's DATA, one per attempt,
    before accepting. `mail_faults[n]`: on the n-th MAIL command overall, "421"
    answers 421 and "drop" closes the connection without a word. `delay`: seconds
    to wait before accepting each message.
    """

    def __init__(self) -> None:
        super().__init__()
        self.data_replies: dict[str, list[str]] = defaultdict(list)
        self.mail_faults: dict[int, str] = {}
        self.mail_commands = 0
        self.delay = 0.0
        self.refused: list[str] = []

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        self.mail_commands += 1
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
