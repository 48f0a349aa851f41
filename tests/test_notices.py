"""Confirm, welcome and goodbye messages, sent at once to a real SMTP server; an SMTP
failure is one line that names the address, and nothing is recorded as sent."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from newsletter.delivery import notices
from newsletter.errors import DeliveryError
from newsletter.mail.capture import CaptureServer
from newsletter.readers import subscriptions
from newsletter.readers.subscriptions import SubscriberInfo
from newsletter.runtime import Runtime
from newsletter.store import db
from newsletter.store.subscribers import get_subscriber_by_id
from newsletter.tokens import read_token
from tests.conftest import CliResult
from tests.delivery_helpers import configured
from tests.smtp_faults import FaultHandler, fault_server


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pending(ctx: Runtime, email: str = "ada@example.org") -> SubscriberInfo:
    return subscriptions.subscribe(ctx, email, ["llms", "memory"]).subscriber


def only_message(server: CaptureServer) -> EmailMessage:
    (received,) = server.messages
    message = message_from_bytes(received.data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def confirmation_sent_at(ctx: Runtime, subscriber_id: int) -> datetime | None:
    with db.transaction(ctx.sessions) as session:
        found = get_subscriber_by_id(session, subscriber_id)
        assert found is not None
        return found.confirmation_sent_at


def test_the_confirmation_carries_a_signed_confirm_link_and_is_recorded(
    context: Runtime, smtp_server: CaptureServer
) -> None:
    ctx = configured(context, smtp_server)
    info = pending(ctx)
    before = datetime.now(UTC)
    notices.send_confirmation(ctx, info)
    message = only_message(smtp_server)
    assert smtp_server.messages[0].recipients == ("ada@example.org",)
    assert message["To"] == "ada@example.org" and message["Message-ID"]
    links = re.findall(r"https?://\S+/confirm/([\w.-]+)", text_of(message))
    assert links, text_of(message)
    assert ctx.secret_key is not None
    assert read_token(ctx.secret_key, "confirm", links[0]) == info.id
    sent_at = confirmation_sent_at(ctx, info.id)
    assert sent_at is not None and before <= sent_at <= datetime.now(UTC)


def test_the_welcome_names_the_readers_topics_and_offers_unsubscribe(
    context: Runtime, smtp_server: CaptureServer
) -> None:
    ctx = configured(context, smtp_server)
    notices.send_welcome(ctx, pending(ctx))
    message = only_message(smtp_server)
    assert "Large language models" in text_of(message) and "Memory" in text_of(message)
    assert message["List-Unsubscribe"] and "/unsubscribe/" in message["List-Unsubscribe"]


def html_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def test_the_welcome_says_when_the_digest_comes_and_lists_typed_interests(
    context: Runtime, smtp_server: CaptureServer
) -> None:
    ctx = configured(context, smtp_server, digest={"weekday": "tuesday", "time": "07:30"})
    info = subscriptions.subscribe(
        ctx, "ada@example.org", ["llms"], ["diffusion models for video"], timezone="Asia/Tokyo"
    ).subscriber
    notices.send_welcome(ctx, info)
    message = only_message(smtp_server)
    for body in (text_of(message), html_of(message)):
        assert "every Tuesday at 07:30 (Asia/Tokyo time)" in body
        assert "Large language models" in body and "diffusion models for video" in body
        assert "general trending digest" not in body


def test_the_welcome_tells_a_reader_who_picked_nothing_about_the_general_digest(
    context: Runtime, smtp_server: CaptureServer
) -> None:
    ctx = configured(context, smtp_server)
    notices.send_welcome(ctx, subscriptions.subscribe(ctx, "ada@example.org").subscriber)
    message = only_message(smtp_server)
    for body in (text_of(message), html_of(message)):
        assert "general trending digest" in body and "every Monday at 08:00 (UTC time)" in body


def test_the_goodbye_is_sent_without_an_unsubscribe_header(
    context: Runtime, smtp_server: CaptureServer
) -> None:
    ctx = configured(context, smtp_server)
    notices.send_goodbye(ctx, pending(ctx))
    message = only_message(smtp_server)
    assert message["To"] == "ada@example.org"
    assert message["List-Unsubscribe"] is None  # they have just left


def test_each_notice_gets_its_own_message_id(context: Runtime, smtp_server: CaptureServer) -> None:
    ctx = configured(context, smtp_server)
    info = pending(ctx)
    ids = [notices.send_notice(ctx, "confirm", info) for _ in range(2)]
    ids.append(notices.send_notice(ctx, "welcome", info))
    assert len(set(ids)) == 3
    sent_ids = [
        m.data.split(b"Message-ID: ")[1].split(b"\r\n")[0].decode() for m in smtp_server.messages
    ]
    assert sent_ids == ids


def test_smtp_down_is_a_one_line_delivery_error_and_nothing_is_recorded(
    context: Runtime,
) -> None:
    ctx = configured(context, smtp={"port": closed_port(), "timeout": 2})
    info = pending(ctx)
    with pytest.raises(DeliveryError) as caught:
        notices.send_confirmation(ctx, info)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("could not send the confirm email to ada@example.org")
    assert confirmation_sent_at(ctx, info.id) is None


def test_a_refusing_server_is_a_delivery_error_too(context: Runtime) -> None:
    with fault_server() as server:
        assert isinstance(server.handler, FaultHandler)
        server.handler.data_replies["ada@example.org"] = ["550 5.1.1 No such user"]
        ctx = configured(context, server)
        info = pending(ctx)
        with pytest.raises(DeliveryError, match=re.escape("550 5.1.1 No such user")):
            notices.send_welcome(ctx, info)


def test_subscribe_with_smtp_down_says_so_in_one_line(
    config_file: Callable[..., Path], run_cli: Callable[..., CliResult], context: Runtime
) -> None:
    path = config_file(smtp={"host": "127.0.0.1", "port": closed_port(), "timeout": 2})
    result = run_cli("--config", str(path), "subscribe", "ada@example.org", "--topic", "llms")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "could not send the confirm email to ada@example.org" in lines[0]
    assert "Traceback" not in result.stdout + result.stderr
