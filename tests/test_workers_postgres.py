"""Two `newsletter worker` processes against one PostgreSQL schema share an edition:
every reader gets it once, nobody twice."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from newsletter.mail.capture import CaptureServer
from newsletter.planning import planner
from newsletter.runtime import Runtime
from newsletter.store import db
from newsletter.store.models import Delivery
from tests.conftest import make_settings
from tests.delivery_helpers import NOW, add_papers, received_by
from tests.process_helpers import bulk_readers, start, write_config
from tests.smtp_faults import FaultHandler, fault_server

pytestmark = pytest.mark.postgres
READERS = 800


@pytest.fixture
def pg_context(postgres_url: str) -> Iterator[Runtime]:
    ctx = Runtime(make_settings(postgres_url, matching={"semantic": "off"}))
    db.upgrade(ctx.engine)
    yield ctx
    ctx.close()


@pytest.fixture
def slow_server() -> Iterator[CaptureServer]:
    """A few milliseconds per message, so that the drain lasts long enough to share."""
    with fault_server() as server:
        assert isinstance(server.handler, FaultHandler)
        server.handler.delay = 0.005
        yield server


def test_two_workers_drain_one_edition_with_no_duplicate_and_nothing_missing(
    pg_context: Runtime, postgres_url: str, slow_server: CaptureServer, tmp_path: Path
) -> None:
    add_papers(pg_context, 30)
    emails = bulk_readers(pg_context, READERS)
    plan = planner.plan_edition(pg_context, NOW)
    assert plan.planned == READERS
    with db.transaction(pg_context.sessions) as session:  # due now, whatever today is
        due = datetime.now(UTC) - timedelta(minutes=1)
        session.execute(update(Delivery).values(next_attempt_at=due))
    config = write_config(
        tmp_path / "config.yaml",
        postgres_url,
        smtp={"host": slow_server.host, "port": slow_server.port, "connections": 3},
        delivery={"batch_size": 20},
    )

    logs = [tmp_path / f"worker{n}.log" for n in range(2)]
    workers = [start(config, "worker", log=log) for log in logs]
    for worker, log in zip(workers, logs, strict=True):
        assert worker.wait(90) == 0, log.read_text()

    received = received_by(slow_server)
    assert set(received) == set(emails) and set(received.values()) == {1}
    sent = [int(re.findall(r"sent (\d+)", log.read_text())[-1]) for log in logs]
    assert sum(sent) == READERS
    assert all(n > 0 for n in sent), sent  # both took part
    with db.transaction(pg_context.sessions) as session:
        statuses = dict(
            session.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all()
        )
    assert statuses == {"sent": READERS}
