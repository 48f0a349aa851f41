"""SMTP transport: a pool of persistent connections, a rate limiter, typed failures.

Pure part: knows nothing of the store. `SmtpPool.send` is safe to call from as many
threads as the pool has connections; each call borrows one connection, so messages
go out in parallel over reused sessions. Failures raise SendError, which says
whether trying again later can help (4xx, timeouts, drops) or not (5xx).
"""

from __future__ import annotations

import queue
import smtplib
import ssl
import threading
import time
from collections.abc import Callable

from newsletter.config import SmtpConfig


class SendError(Exception):
    """A message was not accepted. `permanent`: a 5xx reply, retrying cannot help."""

    def __init__(self, message: str, permanent: bool = False, code: int | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.code = code


class _Dropped(SendError):
    """The session is gone (disconnect or 421) and the server did not take the message."""


class RateLimiter:
    """Token bucket: at most `rate` sends per second on average, bursts of `burst`.

    Slots are handed out under a lock and slept for outside it, so threads share one
    budget without serialising their network I/O.
    """

    def __init__(
        self,
        rate: float,
        burst: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = 1.0 / rate
        self.burst = max(burst, 1.0)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next: float | None = None  # when the next token is free

    def acquire(self) -> None:
        with self._lock:
            now = self._clock()
            earliest = now - (self.burst - 1) * self.interval  # unused budget carried over
            slot = now if self._next is None else max(self._next, earliest)
            self._next = slot + self.interval
        wait = slot - now
        if wait > 0:
            self._sleep(wait)


class Connection:
    """One SMTP session, opened on first use and again after a drop."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self._smtp: smtplib.SMTP | None = None

    def _open(self) -> smtplib.SMTP:
        config = self.config
        try:
            smtp: smtplib.SMTP
            if config.security == "ssl":
                smtp = smtplib.SMTP_SSL(
                    config.host,
                    config.port,
                    timeout=config.timeout,
                    context=ssl.create_default_context(),
                )
            else:
                smtp = smtplib.SMTP(config.host, config.port, timeout=config.timeout)
            smtp.ehlo()
            if config.security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if config.username:
                smtp.login(config.username, config.password or "")
        except smtplib.SMTPResponseException as exc:
            # Never permanent: a server refusing us (login, greeting) says nothing
            # about the reader, and must not bounce them; the edition's failure
            # breaker pauses sending instead, with this message as the reason.
            raise SendError(
                f"SMTP server {config.host}:{config.port} refused the session: {_reply(exc)}",
                code=exc.smtp_code,
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise SendError(
                f"cannot connect to SMTP server {config.host}:{config.port}: {_describe(exc)}"
            ) from None
        return smtp

    def send(self, sender: str, recipient: str, data: bytes) -> None:
        """Send one message; one silent retry on a fresh session if a reused one dropped.

        A reused session may have been closed by the server while idle (or answer
        421); the message was then not taken, so trying once more at once is safe.
        """
        reused = self._smtp is not None
        try:
            self._send_once(sender, recipient, data)
        except _Dropped:
            if not reused:
                raise
            self._send_once(sender, recipient, data)

    def _send_once(self, sender: str, recipient: str, data: bytes) -> None:
        if self._smtp is None:
            self._smtp = self._open()
        try:
            self._smtp.sendmail(sender, [recipient], data)
        except smtplib.SMTPRecipientsRefused as exc:
            code, message = next(iter(exc.recipients.values()))
            raise self._reply_error(code, message) from None
        except smtplib.SMTPSenderRefused as exc:
            # Our own address refused: a setup problem, not the reader's; never a bounce.
            error = self._reply_error(exc.smtp_code, exc.smtp_error)
            raise SendError(str(error), code=exc.smtp_code) from None
        except smtplib.SMTPResponseException as exc:
            raise self._reply_error(exc.smtp_code, exc.smtp_error) from None
        except TimeoutError:
            self.close()
            raise SendError(f"SMTP server timed out after {self.config.timeout:g}s") from None
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            raise _Dropped(f"SMTP connection lost: {_describe(exc)}") from None

    def _reply_error(self, code: int, message: bytes | str) -> SendError:
        error = _classify_reply(code, message)
        if code == 421:  # the server is closing this session
            self.close()
            return _Dropped(str(error), code=code)
        return error

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()


class SmtpPool:
    """`size` persistent connections shared by the sending threads."""

    def __init__(self, config: SmtpConfig, size: int | None = None) -> None:
        self.config = config
        self.size = size or config.connections
        self._idle: queue.LifoQueue[Connection] = queue.LifoQueue()
        for _ in range(self.size):
            self._idle.put(Connection(config))
        self._limiter = RateLimiter(config.max_rate) if config.max_rate else None

    def send(self, sender: str, recipient: str, data: bytes) -> None:
        if self._limiter is not None:
            self._limiter.acquire()
        connection = self._idle.get()
        try:
            connection.send(sender, recipient, data)
        finally:
            self._idle.put(connection)

    def close(self) -> None:
        for _ in range(self.size):
            self._idle.get().close()

    def __enter__(self) -> SmtpPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _classify(exc: smtplib.SMTPResponseException) -> SendError:
    return _classify_reply(exc.smtp_code, exc.smtp_error)


def _classify_reply(code: int, message: bytes | str) -> SendError:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    summary = f"SMTP {code} {' '.join(text.split())}".strip()[:300]
    return SendError(summary, permanent=500 <= code < 600, code=code)


def _reply(exc: smtplib.SMTPResponseException) -> str:
    return str(_classify(exc))


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
