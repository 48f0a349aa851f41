"""Helpers for the web tests: a store wired to a real SMTP capture server, and mail readers."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from httpx import Response

from newsletter.mail.capture import CaptureServer, Received
from newsletter.runtime import Runtime
from newsletter.store import db
from newsletter.store.models import Edition, EditionPaper, Paper
from newsletter.web import create_app
from tests.conftest import make_settings

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def web_context(tmp_path: Path, smtp: CaptureServer, **web: Any) -> Runtime:
    settings = make_settings(
        f"sqlite:///{tmp_path / 'web.db'}",
        smtp={"host": smtp.host, "port": smtp.port},
        site={"base_url": "http://testserver"},
        web=web,
    )
    context = Runtime(settings)
    db.upgrade(context.engine)
    return context


@dataclass
class Rig:
    """The app over a real SQLite store, mailing a real SMTP capture server."""

    context: Runtime
    client: TestClient
    smtp: CaptureServer


@contextmanager
def rig(tmp_path: Path, smtp: CaptureServer, **web: Any) -> Iterator[Rig]:
    context = web_context(tmp_path, smtp, **web)
    try:
        with TestClient(create_app(context)) as client:
            yield Rig(context, client, smtp)
    finally:
        context.close()


def csrf_of(response: Response) -> str:
    match = CSRF.search(response.text)
    assert match, "the page has no CSRF field"
    return match.group(1)


def subscribe(client: TestClient, email_address: str, **fields: Any) -> Response:
    token = csrf_of(client.get("/"))
    data = {"csrf_token": token, "email": email_address, "topic": ["llms"], **fields}
    return client.post("/subscribe", data=data, follow_redirects=False)


def text_of(message: Received) -> str:
    parsed = email.message_from_bytes(message.data, policy=email.policy.default)
    part = parsed.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def subject_of(message: Received) -> str:
    return str(email.message_from_bytes(message.data, policy=email.policy.default)["Subject"])


def link(message: Received, purpose: str) -> str:
    """The path of the first `purpose` link in a message (its base URL is the test server)."""
    match = re.search(rf"https?://[^/\s]+(/{purpose}/[A-Za-z0-9_.\-]+)", text_of(message))
    assert match, f"no {purpose} link in:\n{text_of(message)}"
    return match.group(1)


def add_papers(context: Runtime, count: int, *, days_ago: float = 1.0) -> list[int]:
    now = datetime.now(UTC)
    with db.transaction(context.sessions) as session:
        papers = [
            Paper(
                external_id=f"arxiv:2501.{i:05d}",
                title=f"Paper number {i}",
                abstract=f"Abstract of paper {i}.",
                authors=["Ada Lovelace"],
                upvotes=i * 10,
                source="test",
                url=f"https://example.org/papers/{i}",
                listed_at=now - timedelta(days=days_ago),
            )
            for i in range(1, count + 1)
        ]
        session.add_all(papers)
        session.flush()
        return [p.id for p in papers]


def add_edition(context: Runtime, key: str, paper_ids: list[int]) -> None:
    now = datetime.now(UTC)
    with db.transaction(context.sessions) as session:
        edition = Edition(
            key=key, window_start=now - timedelta(days=7), window_end=now, scheduled_for=now
        )
        session.add(edition)
        session.flush()
        for position, paper_id in enumerate(paper_ids):
            session.add(EditionPaper(edition_id=edition.id, paper_id=paper_id, position=position))


def tampered(token: str) -> str:
    """The token with one character of its signature changed. A middle one: the last
    character of base64 carries bits that decoding ignores, so changing it may not
    change the signature at all."""
    at = len(token) - 10
    return token[:at] + ("A" if token[at] != "A" else "B") + token[at + 1 :]
