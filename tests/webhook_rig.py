"""The webhook tests' rig: the real app over a real SQLite store where a reader has been
sent a digest, every relay configured (bounce_after 2), and each relay's client."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from sqlalchemy import select

from newsletter.returns.webhooks.receive import Relays
from newsletter.runtime import Runtime
from newsletter.store import db
from newsletter.store.models import Delivery, Edition, MailEvent, Subscriber
from newsletter.store.subscribers import add_subscriber
from newsletter.web import create_app
from tests.conftest import make_settings
from tests.webhook_support import (
    CERT_URL,
    MAILGUN_KEY,
    POSTMARK_PASSWORD,
    POSTMARK_USER,
    TOPIC,
    FakeSns,
    MailgunRelay,
    PostmarkRelay,
    Prepared,
    SendGridKey,
    SendGridRelay,
    SesRelay,
    rsa_key,
    self_signed,
)

READER = "ada@example.org"
MESSAGE_ID = "<2026-W48.1.0123456789ab@papers.example.org>"
PROVIDERS = ("ses", "postmark", "mailgun", "sendgrid")


class Relay(Protocol):
    name: str

    def request(self, report: str, twin: int = 0) -> Prepared: ...


@dataclass
class Hooks:
    context: Runtime
    client: TestClient
    sns: FakeSns
    relays: dict[str, Relay]
    delivery_id: int

    def post(self, provider: str, report: str, twin: int = 0) -> Any:
        return self.relays[provider].request(report, twin).post(self.client)

    def reader(self) -> tuple[str, int]:
        with self.context.sessions() as session:
            found = session.scalars(select(Subscriber).where(Subscriber.email == READER)).one()
            return found.status, found.hard_bounces

    def events(self) -> list[tuple[str, str, int | None]]:
        with self.context.sessions() as session:
            rows = session.execute(
                select(MailEvent.kind, MailEvent.source, MailEvent.delivery_id).order_by(
                    MailEvent.id
                )
            )
            return [tuple(row) for row in rows]  # type: ignore[misc]


@lru_cache(maxsize=1)
def sns_key() -> rsa.RSAPrivateKey:
    return rsa_key()  # 2048-bit RSA takes a moment: one per test run


@lru_cache(maxsize=1)
def sendgrid_key() -> SendGridKey:
    return SendGridKey()


def webhook_settings(url: str, sendgrid_public_key: str | None) -> Any:
    """Every relay configured; none at all without a SendGrid key."""
    configured = {
        "ses_topic_arns": [TOPIC],
        "postmark_username": POSTMARK_USER,
        "postmark_password": POSTMARK_PASSWORD,
        "mailgun_signing_key": MAILGUN_KEY,
        "sendgrid_public_key": sendgrid_public_key,
    }
    return make_settings(
        url,
        site={"base_url": "http://testserver"},
        delivery={"bounce_after": 2},
        bounces={"webhooks": configured if sendgrid_public_key else {}},
    )


def add_sent_digest(context: Runtime) -> int:
    now = datetime.now(UTC)
    with db.transaction(context.sessions) as session:
        reader = add_subscriber(session, READER, status="active", topics=["llms"])
        edition = Edition(key="2026-W48", window_start=now, window_end=now, scheduled_for=now)
        session.add(edition)
        session.flush()
        delivery = Delivery(
            edition_id=edition.id,
            subscriber_id=reader.id,
            status="sent",
            attempts=1,
            next_attempt_at=now,
            message_id=MESSAGE_ID,
            sent_at=now,
        )
        session.add(delivery)
        session.flush()
        return delivery.id


@contextmanager
def open_hooks(tmp_path: Path) -> Iterator[Hooks]:
    context = Runtime(webhook_settings(f"sqlite:///{tmp_path / 'hooks.db'}", sendgrid_key().public))
    db.upgrade(context.engine)
    delivery_id = add_sent_digest(context)
    sns = FakeSns({CERT_URL: self_signed(sns_key())})
    app = create_app(context)
    app.state.relays = Relays(context, fetch=sns)  # Amazon's certificates: the outer edge
    relays: dict[str, Relay] = {
        "ses": SesRelay(sns_key()),
        "postmark": PostmarkRelay(),
        "mailgun": MailgunRelay(),
        "sendgrid": SendGridRelay(sendgrid_key()),
    }
    try:
        with TestClient(app) as client:
            yield Hooks(context, client, sns, relays, delivery_id)
    finally:
        context.close()
