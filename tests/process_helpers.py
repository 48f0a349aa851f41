"""Running the real `newsletter` program in a subprocess, and quick bulk set-up for it."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import insert

from newsletter.planning import weeks
from newsletter.runtime import Runtime
from newsletter.store import db
from newsletter.store.models import Subscriber, SubscriberTopic
from tests.conftest import ROOT, TOPICS


def write_config(path: Path, database_url: str, **sections: Any) -> Path:
    raw: dict[str, Any] = {
        "database": {"url": database_url},
        "secret_key": "test-secret-key-0123456789",
        "topics": TOPICS,
        "matching": {"semantic": "off"},  # no model load: the subprocesses start fast
        **sections,
    }
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def start(config: Path, *args: str, log: Path) -> subprocess.Popen[bytes]:
    """`python -m newsletter --config CONFIG ARGS…`, output to `log` (never a pipe that
    could fill up and stall the process)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NEWSLETTER_DEBUG": "1"}
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "newsletter", "--config", str(config), *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def bulk_readers(context: Runtime, count: int, topic: str = "llms") -> list[str]:
    """`count` active readers in two statements (add_subscriber flushes one at a time)."""
    emails = [f"reader{i:05d}@example.org" for i in range(count)]
    now = datetime.now(UTC)
    with db.transaction(context.sessions) as session:
        rows = [
            {"email": e, "status": "active", "paused": False, "hard_bounces": 0}
            | {"created_at": now, "confirmed_at": now}
            for e in emails
        ]
        ids = session.scalars(insert(Subscriber).returning(Subscriber.id), rows).all()
        session.execute(
            insert(SubscriberTopic), [{"subscriber_id": i, "topic": topic} for i in ids]
        )
    return emails


def current_window_instant(context: Runtime) -> datetime:
    """A moment inside the real current week's window (the CLI plans for now)."""
    schedule = weeks.current_schedule(context.settings.digest, datetime.now(UTC))
    return schedule.window_end - timedelta(days=1)
