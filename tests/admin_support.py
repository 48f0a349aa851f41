"""Helpers for the admin dashboard tests: a store with an admin, readers who get mail,
and logging in through the real login form. Its fixture `admin_site` (an app
builder) is shared by the admin test modules: tests/conftest.py loads this module."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from httpx import Response

from newsletter.config import Settings
from newsletter.delivery import dispatch
from newsletter.mail.capture import CaptureServer
from newsletter.runtime import Runtime
from newsletter.store import db
from newsletter.web import create_app
from tests.conftest import make_settings
from tests.delivery_helpers import add_papers, add_readers

ADMIN = "boss@example.org"
PASSWORD = "correct horse battery staple"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
STAT = re.compile(r'data-stat="([^"]+)">([^<]*)<')


@lru_cache(maxsize=1)
def password_hash() -> str:
    return PasswordHasher().hash(PASSWORD)


def admin_settings(database_url: str, smtp: CaptureServer, **sections: Any) -> Settings:
    return make_settings(
        database_url,
        smtp={"host": smtp.host, "port": smtp.port},
        site={"base_url": "http://testserver"},
        admins=[{"email": ADMIN, "password_hash": password_hash()}],
        **sections,
    )


def csrf_of(response: Response) -> str:
    match = CSRF.search(response.text)
    assert match, "the page has no CSRF field"
    return match.group(1)


def log_in(client: TestClient, email: str = ADMIN, password: str = PASSWORD) -> Response:
    token = csrf_of(client.get("/admin/login"))
    data = {"csrf_token": token, "email": email, "password": password}
    return client.post("/admin/login", data=data, follow_redirects=False)


def stats_of(response: Response) -> dict[str, str]:
    """The numbers the dashboard marks with data-stat, by name."""
    return dict(STAT.findall(response.text))


def add_fresh_papers(context: Runtime, count: int = 12) -> None:
    """Papers on the readers' topics, listed in the current edition's window."""
    add_papers(context, count, listed_at=datetime.now(UTC) - timedelta(hours=1))


@contextmanager
def admin_sites(
    database_url: str, smtp: CaptureServer
) -> Iterator[Callable[..., tuple[Runtime, TestClient]]]:
    """Build the app over a migrated store; `web` settings may be overridden per build."""
    opened: list[tuple[Runtime, TestClient]] = []

    def build(**web: Any) -> tuple[Runtime, TestClient]:
        context = Runtime(admin_settings(database_url, smtp, web=web))
        db.upgrade(context.engine)
        client = TestClient(create_app(context))
        opened.append((context, client))
        return context, client

    try:
        yield build
    finally:
        for context, client in opened:
            client.close()
            context.close()


def signed_in(site: tuple[Runtime, TestClient]) -> tuple[Runtime, TestClient]:
    assert log_in(site[1]).status_code == 303
    return site


def sent_edition(context: Runtime, readers: int = 4) -> list[str]:
    """Readers who were each sent this week's edition."""
    emails = add_readers(context, readers)
    add_fresh_papers(context)
    result = dispatch.send_now(context)
    assert result.counters.sent == readers
    return emails


@pytest.fixture
def admin_site(
    sqlite_url: str, smtp_server: CaptureServer
) -> Iterator[Callable[..., tuple[Runtime, TestClient]]]:
    with admin_sites(sqlite_url, smtp_server) as build:
        yield build
