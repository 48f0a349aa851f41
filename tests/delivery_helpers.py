"""Builders shared by the delivery tests: a store with papers and readers, mail counts."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from newsletter.mail.capture import CaptureServer
from newsletter.runtime import Runtime
from newsletter.sources.records import PaperRecord
from newsletter.store import db
from newsletter.store.papers import upsert_papers
from newsletter.store.subscribers import add_subscriber

# Wednesday of ISO week 2026-W48; its edition's window is 16–23 November (Monday 08:00).
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
IN_WINDOW = datetime(2026, 11, 19, 9, 0, tzinfo=UTC)


def add_papers(context: Runtime, count: int = 30, listed_at: datetime = IN_WINDOW) -> None:
    week = (listed_at - IN_WINDOW).days // 7
    topics = ("large language model", "image segmentation", "memory")
    records = [
        PaperRecord(
            f"arxiv:26{11 + week:02d}.{i:05d}",
            f"Paper {i} on {topics[i % 3]}",
            "json",
            abstract=f"We study {topics[i % 3]} at scale. It works well.",
            authors=("Ada Lovelace", "Alan Turing"),
            upvotes=i,
            listed_at=listed_at - timedelta(minutes=i),
        )
        for i in range(count)
    ]
    with db.transaction(context.sessions) as session:
        upsert_papers(session, records)


def add_readers(
    context: Runtime, count: int, topics: Iterable[str] = ("llms",), **kwargs: Any
) -> list[str]:
    emails = [f"reader{i:05d}@example.org" for i in range(count)]
    with db.transaction(context.sessions) as session:
        for email in emails:
            add_subscriber(session, email, status="active", topics=list(topics), **kwargs)
    return emails


def received_by(server: CaptureServer) -> Counter[str]:
    return Counter(r for m in server.messages for r in m.recipients)


def configured(context: Runtime, server: CaptureServer | None = None, **sections: Any) -> Runtime:
    """A context on the same database with some settings changed (SMTP → `server`)."""
    if server is not None:
        sections["smtp"] = {"host": server.host, "port": server.port, **sections.get("smtp", {})}
    return Runtime(context.settings.with_overrides(**sections))


def clock_from(start: datetime) -> Callable[[], datetime]:
    """A clock that starts at `start` and runs at real speed (retries come due)."""
    origin = time.monotonic()
    return lambda: start + timedelta(seconds=time.monotonic() - origin)
