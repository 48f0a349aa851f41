"""The SMTP pool against real aiosmtpd servers: STARTTLS, implicit TLS and login per
config, certificate checks, reconnects, timeouts, reply classes, shared connections,
and the rate limiter over a simulated minute."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from newsletter.config import SmtpConfig
from newsletter.mail.capture import CaptureHandler
from newsletter.mail.smtp import RateLimiter, SendError, SmtpPool
from tests.smtp_faults import FaultHandler

# Tests that log in over plain text on purpose (no TLS on loopback) need not be told.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
SENDER = "papers@example.org"
USER, PASSWORD = "mailer", "s3cret-password"


def message(recipient: str) -> bytes:
    return f"From: {SENDER}\r\nTo: {recipient}\r\nSubject: hi\r\n\r\nHello.\r\n".encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PeerHandler(FaultHandler):
    """Remembers which client connection (peer address) carried each message, and
    refuses RCPT for the addresses in `refuse_rcpt`."""

    def __init__(self) -> None:
        super().__init__()
        self.peers: list[object] = []
        self.refuse_rcpt: dict[str, str] = {}

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address in self.refuse_rcpt:
            return self.refuse_rcpt[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        if reply.startswith("250"):
            self.peers.append(session.peer)
        return reply


class Server:
    """An aiosmtpd server on a free loopback port with the given SMTP options."""

    def __init__(self, **options: Any) -> None:
        self.handler: CaptureHandler = options.pop("handler", None) or PeerHandler()
        self.port = free_port()
        self.controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port, decode_data=False, **options
        )

    def config(self, **values: Any) -> SmtpConfig:
        return SmtpConfig(**{"host": "127.0.0.1", "port": self.port, "timeout": 5, **values})

    @property
    def recipients(self) -> list[str]:
        return [r for m in self.handler.messages for r in m.recipients]

    def __enter__(self) -> Server:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


def send(config: SmtpConfig, recipient: str = "ada@example.org", size: int = 1) -> None:
    with SmtpPool(config, size=size) as pool:
        pool.send(SENDER, recipient, message(recipient))


def authenticator(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data == (USER.encode(), PASSWORD.encode())
    return AuthResult(success=ok, handled=False)  # not handled: aiosmtpd replies 235/535


# --- TLS and login --------------------------------------------------------------------


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1 (made with openssl at test time)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed; cannot make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-nodes", "-days", "2"),
            *("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-keyout", str(key), "-out", str(cert)),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


@pytest.fixture
def trusted(certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Clients trust the test certificate the way an admin would: SSL_CERT_FILE."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))


def test_starttls_with_login_delivers_when_the_server_insists_on_both(
    server_tls: ssl.SSLContext, trusted: None
) -> None:
    options = {"tls_context": server_tls, "require_starttls": True, "auth_required": True}
    with Server(authenticator=authenticator, **options) as server:
        send(server.config(security="starttls", username=USER, password=PASSWORD))
    assert server.recipients == ["ada@example.org"]


def test_implicit_tls_with_login_delivers(server_tls: ssl.SSLContext, trusted: None) -> None:
    # aiosmtpd only knows of STARTTLS sessions; on an implicit-TLS socket it must be
    # told to offer AUTH (the session is encrypted all the same).
    options = {"auth_required": True, "auth_require_tls": False}
    with Server(ssl_context=server_tls, authenticator=authenticator, **options) as server:
        send(server.config(security="ssl", username=USER, password=PASSWORD))
    assert server.recipients == ["ada@example.org"]


def test_login_without_tls_works_where_the_server_allows_it() -> None:
    options = {"auth_required": True, "auth_require_tls": False}
    with Server(authenticator=authenticator, **options) as server:
        send(server.config(username=USER, password=PASSWORD))
    assert server.recipients == ["ada@example.org"]


def test_a_wrong_password_is_a_transient_error_that_names_the_refusal() -> None:
    options = {"auth_required": True, "auth_require_tls": False}
    with (
        Server(authenticator=authenticator, **options) as server,
        pytest.raises(SendError) as caught,
    ):
        send(server.config(username=USER, password="wrong"))
    # Our own setup is wrong, not the reader's address: it must never bounce them.
    assert not caught.value.permanent and caught.value.code == 535
    assert "refused the session" in str(caught.value)
    assert server.recipients == []


def test_a_server_that_requires_starttls_refuses_plain_text_without_bouncing_the_reader(
    server_tls: ssl.SSLContext,
) -> None:
    with (
        Server(tls_context=server_tls, require_starttls=True) as server,
        pytest.raises(SendError) as caught,
    ):
        send(server.config(security="none"))
    assert not caught.value.permanent and caught.value.code == 530
    assert server.recipients == []


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_an_untrusted_certificate_is_refused(
    server_tls: ssl.SSLContext, security: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "no-such-bundle.pem"))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    options = {"ssl_context": server_tls} if security == "ssl" else {"tls_context": server_tls}
    with (
        Server(**options) as server,
        pytest.raises(SendError, match="cannot connect") as caught,
    ):
        send(server.config(security=security))
    assert not caught.value.permanent
    assert server.recipients == []


def test_a_lone_cr_and_a_lone_lf_in_a_body_reach_the_server_as_crlf() -> None:
    # As many CRs as LFs, yet one CR and one LF stand alone: the line after the bare
    # LF starts with a dot, which must be stuffed once it is a line of its own.
    head = b"From: papers@example.org\r\nTo: ada@example.org\r\nSubject: hi\r\n\r\n"
    with Server() as server, SmtpPool(server.config(), size=1) as pool:
        pool.send(SENDER, "ada@example.org", head + b"one\rtwo\n.three\r\n")
    [received] = server.handler.messages
    assert received.data == head + b"one\r\ntwo\r\n.three\r\n"


# --- replies, drops and timeouts ------------------------------------------------------


def fault(server: Server) -> PeerHandler:
    assert isinstance(server.handler, PeerHandler)
    return server.handler


@pytest.mark.parametrize(
    ("reply", "permanent"),
    [
        ("550 5.1.1 No such user", True),
        ("552 5.2.2 Over quota", True),
        ("451 4.7.1 Greylisted", False),
        ("452 4.2.2 Mailbox full", False),
    ],
)
def test_5xx_replies_are_permanent_and_4xx_are_transient(reply: str, permanent: bool) -> None:
    with Server() as server:
        fault(server).data_replies["ada@example.org"] = [reply]
        with pytest.raises(SendError) as caught:
            send(server.config())
    assert caught.value.permanent is permanent
    assert caught.value.code == int(reply[:3]) and reply[4:] in str(caught.value)


def test_a_refused_recipient_is_classified_by_its_reply() -> None:
    with Server() as server:
        fault(server).refuse_rcpt["gone@example.org"] = "550 5.1.1 User unknown"
        with pytest.raises(SendError) as caught:
            send(server.config(), "gone@example.org")
    assert caught.value.permanent and caught.value.code == 550


def send_eight(server: Server) -> None:
    with SmtpPool(server.config(), size=1) as pool:
        for i in range(8):
            pool.send(SENDER, f"r{i}@example.org", message(f"r{i}@example.org"))


def test_a_dropped_session_is_reopened_and_nothing_is_lost() -> None:
    with Server() as server:
        fault(server).mail_faults.update({3: "drop", 7: "drop"})
        send_eight(server)
    assert server.recipients == [f"r{i}@example.org" for i in range(8)]
    assert len(set(fault(server).peers)) == 3  # the first session and two reopened ones


def test_a_421_to_data_closes_the_session_and_the_message_goes_out_on_a_new_one() -> None:
    with Server() as server:
        fault(server).data_replies["r4@example.org"] = ["421 4.3.2 Shutting down"]
        send_eight(server)
    assert server.recipients == [f"r{i}@example.org" for i in range(8)]
    assert len(set(fault(server).peers)) == 2


def test_a_421_to_mail_from_on_a_reused_session_is_retried_on_a_new_one() -> None:
    with Server() as server:
        fault(server).mail_faults[5] = "421"
        send_eight(server)
    assert server.recipients == [f"r{i}@example.org" for i in range(8)]


def test_a_drop_on_a_fresh_session_is_a_transient_error() -> None:
    with Server() as server:
        fault(server).mail_faults[1] = "drop"
        with pytest.raises(SendError) as caught:
            send(server.config())
    assert not caught.value.permanent


def test_a_server_that_answers_too_slowly_times_out_as_a_transient_error() -> None:
    with Server() as server:
        fault(server).delay = 2.0
        with pytest.raises(SendError, match="timed out") as caught:
            send(server.config(timeout=0.3))
    assert not caught.value.permanent


def test_a_server_that_never_greets_times_out_as_a_transient_error() -> None:
    with socket.socket() as silent:  # accepts connections (backlog) but never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen(5)
        config = SmtpConfig(host="127.0.0.1", port=silent.getsockname()[1], timeout=0.3)
        with pytest.raises(SendError, match="cannot connect") as caught:
            send(config)
    assert not caught.value.permanent


def test_a_closed_port_is_a_transient_error_naming_the_server() -> None:
    config = SmtpConfig(host="127.0.0.1", port=free_port(), timeout=1)
    with pytest.raises(SendError, match=f"127.0.0.1:{config.port}") as caught:
        send(config)
    assert not caught.value.permanent


# --- the pool -------------------------------------------------------------------------


def test_the_pool_reuses_its_connections_from_many_threads() -> None:
    with Server() as server, SmtpPool(server.config(connections=3)) as pool:
        recipients = [f"r{i}@example.org" for i in range(60)]

        def work(chunk: list[str]) -> None:
            for recipient in chunk:
                pool.send(SENDER, recipient, message(recipient))

        threads = [threading.Thread(target=work, args=(recipients[n::6],)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert sorted(server.recipients) == sorted(recipients)
    assert 1 <= len(set(fault(server).peers)) <= 3  # 60 messages, at most 3 sessions


# --- the rate limiter -----------------------------------------------------------------


class VirtualClock:
    """Time that passes only when someone sleeps or works."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.parametrize(("rate", "send_seconds"), [(10.0, 0.02), (3.5, 0.1), (50.0, 0.001)])
def test_the_rate_limiter_holds_max_rate_within_5_percent_over_a_minute(
    rate: float, send_seconds: float
) -> None:
    clock = VirtualClock()
    limiter = RateLimiter(rate, clock=clock, sleep=clock.sleep)
    sent = 0
    while True:
        limiter.acquire()
        if clock.now >= 60.0:
            break
        sent += 1
        clock.sleep(send_seconds)  # the time a send takes
    assert abs(sent - rate * 60) <= 0.05 * rate * 60, sent


def test_the_rate_limiter_carries_at_most_a_burst_over_an_idle_spell() -> None:
    clock = VirtualClock()
    limiter = RateLimiter(10.0, burst=5, clock=clock, sleep=clock.sleep)
    limiter.acquire()
    clock.sleep(30.0)  # idle: only `burst` tokens may have piled up
    start = clock.now
    for _ in range(5):
        limiter.acquire()
    assert clock.now == pytest.approx(start)  # the burst goes out at once
    for _ in range(10):
        limiter.acquire()
    assert clock.now - start == pytest.approx(1.0, abs=0.11)  # then 10 per second


def test_threads_share_one_budget() -> None:
    clock = VirtualClock()  # frozen: every acquire's slot is what it would sleep until
    slots: list[float] = []
    lock = threading.Lock()

    def record(seconds: float) -> None:
        with lock:
            slots.append(seconds)

    limiter = RateLimiter(20.0, clock=clock, sleep=record)

    def sender() -> None:
        for _ in range(300):
            limiter.acquire()

    threads = [threading.Thread(target=sender) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    ordered = sorted(slots)
    # 1,200 sends (one went at once, without sleeping): one per 1/20 s, none doubled.
    assert len(ordered) == 1199
    assert ordered == pytest.approx([n / 20 for n in range(1, 1200)])
    assert sum(1 for s in [0.0, *ordered] if s < 60.0) == 1200
