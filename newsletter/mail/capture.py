"""An SMTP server that keeps what it receives: the demo's mail catcher, and the tests'.

Runs aiosmtpd in its own thread on a loopback port. Messages are kept in memory and,
when a folder is given, written there as .eml files.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass(frozen=True)
class Received:
    mail_from: str
    recipients: tuple[str, ...]
    data: bytes


class CaptureHandler:
    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder
        self.messages: list[Received] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        message = Received(envelope.mail_from or "", tuple(envelope.rcpt_tos), content)
        with self._lock:
            self.messages.append(message)
            number = len(self.messages)
        if self.folder is not None:
            (self.folder / f"{number:05d}.eml").write_bytes(content)
        return "250 Message accepted for delivery"


class CaptureServer:
    """`with CaptureServer() as smtp:` then send to smtp.host:smtp.port."""

    def __init__(self, folder: Path | None = None, handler: Any = None, port: int = 0) -> None:
        self.handler = handler or CaptureHandler(folder)
        # port 0: the OS picks a free port; aiosmtpd's ready check needs a real one.
        self._controller = Controller(
            self.handler, hostname="127.0.0.1", port=port or _free_port(), decode_data=False
        )

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        return int(self._controller.port)

    @property
    def messages(self) -> list[Received]:
        return list(self.handler.messages)

    def start(self) -> CaptureServer:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> CaptureServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
