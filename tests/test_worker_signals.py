"""`newsletter worker --loop` stopped with SIGTERM: it finishes the messages in flight,
releases the rest, and exits; the next worker sends what is left, nothing twice."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from sqlalchemy import func, select

from newsletter.planning import planner
from newsletter.runtime import Runtime
from newsletter.store import db
from newsletter.store.models import Delivery
from tests.delivery_helpers import add_papers, configured, received_by
from tests.process_helpers import bulk_readers, current_window_instant, start, write_config
from tests.smtp_faults import fault_server

READERS = 60


def statuses(context: Runtime) -> dict[str, int]:
    with db.transaction(context.sessions) as session:
        rows = session.execute(select(Delivery.status, func.count()).group_by(Delivery.status))
        return {status: count for status, count in rows}


def held_leases(context: Runtime) -> int:
    with db.transaction(context.sessions) as session:
        query = select(func.count()).where(Delivery.lease_owner.is_not(None))
        return int(session.scalar(query.where(Delivery.status != "sent")) or 0)


def test_sigterm_finishes_in_flight_releases_the_rest_and_exits(
    context: Runtime, tmp_path: Path
) -> None:
    now = current_window_instant(context)
    add_papers(context, 10, now)
    emails = bulk_readers(context, READERS)
    planner.plan_edition(configured(context, matching={"semantic": "off"}))  # this week
    with fault_server() as server:
        server.handler.delay = 0.05  # slow enough to stop it part-way
        smtp = {"host": server.host, "port": server.port, "connections": 2}
        config = write_config(tmp_path / "config.yaml", context.settings.database.url, smtp=smtp)
        worker = start(config, "worker", "--loop", log=tmp_path / "worker.log")
        deadline = time.monotonic() + 30
        while len(server.messages) < 10 and time.monotonic() < deadline:
            time.sleep(0.02)
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=30)
        log = (tmp_path / "worker.log").read_text()
        assert code in (0, 130), log
        sent_at_stop = len(server.messages)
        assert 10 <= sent_at_stop < READERS, log
        assert statuses(context).get("sent") == sent_at_stop  # every accepted one recorded
        assert held_leases(context) == 0  # the rest released, not left to expire

        again = start(config, "worker", log=tmp_path / "again.log")
        assert again.wait(timeout=60) == 0, (tmp_path / "again.log").read_text()
    assert received_by(server) == dict.fromkeys(emails, 1)
    assert statuses(context) == {"sent": READERS}


def test_send_now_stopped_by_sigterm_exits_non_zero_and_says_so(
    context: Runtime, tmp_path: Path
) -> None:
    add_papers(context, 10, current_window_instant(context))
    bulk_readers(context, READERS)
    with fault_server() as server:
        server.handler.delay = 0.05
        smtp = {"host": server.host, "port": server.port, "connections": 2}
        config = write_config(tmp_path / "config.yaml", context.settings.database.url, smtp=smtp)
        sender = start(config, "send-now", log=tmp_path / "send-now.log")
        deadline = time.monotonic() + 30
        while len(server.messages) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        sender.send_signal(signal.SIGTERM)
        code = sender.wait(timeout=30)
    log = (tmp_path / "send-now.log").read_text()
    assert code == 130, log
    assert "Stopped; unsent deliveries were released for the next run." in " ".join(log.split())
    assert len(server.messages) < READERS
