"""SMTP transport: a pool of persistent connections, a rate limiter, typed failures.

Pure part: knows nothing of the store. `SmtpPool.send` is safe to call from as many
threads as the pool has connections; each call borrows one connection, so messages
go out in parallel over reused sessions. Failures raise SendError, which says
whether trying again later can help (4xx, timeouts, drops) or not (5xx); RelayError
says the relay, not the reader, is the problem.
"""

from __future__ import annotations

import queue
import re
import smtplib
import ssl
import threading
import time
from collections.abc import Callable

import numpy as np

from newsletter.config.mail import SmtpConfig
from newsletter.mail import pipelined


class SendError(Exception):
    """A message was not accepted. `permanent`: a 5xx reply, retrying cannot help."""

    def __init__(self, message: str, permanent: bool = False, code: int | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.code = code


class RelayError(SendError):
    """The relay itself failed us (unreachable, refused the session or our sender): no
    reader's fault, and the next message would most likely fare the same."""


class _Dropped(SendError):
    """The session is gone (disconnect or 421) and the server did not take the message."""


class _RelayDropped(RelayError, _Dropped):
    """A 421 to MAIL: on a reused session, most likely an idle timeout; else the relay."""


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
            code, reply = smtp.ehlo()
            if code != 250:
                raise smtplib.SMTPResponseException(code, reply)
            if config.security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if config.username:
                smtp.login(config.username, config.password or "")
        except smtplib.SMTPResponseException as exc:
            # Never permanent: a server refusing us (login, greeting) says nothing
            # about the reader, and must not bounce them; the edition's failure
            # breaker pauses sending instead, with this message as the reason.
            raise RelayError(
                f"SMTP server {config.host}:{config.port} refused the session: {_reply(exc)}",
                code=exc.smtp_code,
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise RelayError(
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

    # The transaction itself is hand-written, a measured exception: see pipelined.py.
    def _send_once(self, sender: str, recipient: str, data: bytes) -> None:
        if self._smtp is None:
            self._smtp = self._open()
        smtp = self._smtp
        body = wire_body(data)
        delivered = False  # the final "." went out: a later drop may hide an acceptance
        try:
            envelope = [
                b"MAIL FROM:<%s>\r\n" % _ascii(sender, False),
                b"RCPT TO:<%s>\r\n" % _ascii(recipient, True),
            ]
            mail, rcpt, data_reply = pipelined.envelope_replies(smtp, envelope)
            if mail[0] != 250:
                self._abort(data_reply)
                # Our own address refused (or the session ended): the relay's problem or
                # our setup, never the reader's; never a bounce.
                dropped = isinstance(self._reply_error(*mail), _Dropped)  # a 421 closes it
                raise (_RelayDropped if dropped else RelayError)(
                    f"SMTP server {self.config.host}:{self.config.port} refused the sender "
                    f"{sender}: {_classify_reply(*mail)}",
                    code=mail[0],
                )
            if rcpt[0] not in (250, 251):
                self._abort(data_reply)
                raise self._reply_error(*rcpt)
            if data_reply[0] != 354:
                self._abort(data_reply)
                raise self._reply_error(*data_reply)
            assert smtp.sock is not None
            smtp.sock.sendall(body)
            delivered = True
            code, message = pipelined.read_reply(smtp)
            if code != 250:
                raise self._reply_error(code, message)
        except TimeoutError:
            self.close()
            raise SendError(f"SMTP server timed out after {self.config.timeout:g}s") from None
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            lost = f"SMTP connection lost: {_describe(exc)}"
            # Before the final dot the server cannot have taken the message: a fresh
            # session may try again at once. After it, only a later retry (backoff).
            raise (SendError(lost) if delivered else _Dropped(lost)) from None

    def _abort(self, data_reply: pipelined.Reply) -> None:
        """End a transaction that failed before its body: back to a clean session."""
        if self._smtp is None or self._smtp.sock is None:
            return  # closed by a 421
        try:
            pipelined.abort(self._smtp, data_reply)
        except (smtplib.SMTPException, OSError):
            self.close()  # the refusal is what matters; the next send reconnects

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


def wire_body(data: bytes) -> bytes:
    """The DATA payload: CRLF line ends, dot-stuffed, ended by "CRLF . CRLF".

    Composed messages are CRLF throughout (mail.message guarantees it). Every CR must
    be followed by an LF and every LF preceded by a CR, which one vectorised pass
    checks: it catches any bare one (the stuff of SMTP smuggling), and only then does
    the slower regular expression run. A second finds the lines that begin with a dot
    (base64 never makes one). bytes.count and bytes.replace on b"\r\n" took 105 µs
    for a 55 KB digest, this 25 µs.
    """
    octets = np.frombuffer(data, np.uint8)
    cr, lf = octets == 13, octets == 10
    if len(data) and (cr[-1] or lf[0] or not np.array_equal(cr[:-1], lf[1:])):
        data = re.sub(rb"(?:\r\n|\n|\r(?!\n))", b"\r\n", data)
        octets = np.frombuffer(data, np.uint8)
        lf = octets == 10
    if data.startswith(b"."):
        data = b"." + data
    if np.any(lf[:-1] & (octets[1:] == 46)):  # a "." just after a line end
        data = data.replace(b"\r\n.", b"\r\n..")
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


def _ascii(address: str, permanent: bool) -> bytes:
    """An envelope address as command bytes; CR/LF can never reach the wire.

    Only the reader's address can make a delivery fail for good: a bad sender is our
    setup, never a reason to bounce anyone.
    """
    if any(c in address for c in "\r\n<>") or not address.isascii():
        raise SendError(f"cannot use {address!r} as an SMTP envelope address", permanent)
    return address.encode("ascii")


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
