"""A `send-now` process killed with SIGKILL part-way loses nothing: run again, every
reader has the edition, and only messages in flight at the kill can arrive twice."""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from newsletter.mail.capture import CaptureServer
from newsletter.runtime import Runtime
from newsletter.store import db
from newsletter.store.models import Delivery
from tests.delivery_helpers import add_papers, received_by
from tests.process_helpers import bulk_readers, current_window_instant, start, write_config

READERS = 2_000
CONNECTIONS = 4
KILL_AFTER = 600  # messages received before the kill


def wait_until(condition: object, timeout: float, what: str) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.01)


@pytest.mark.slow
def test_send_now_killed_part_way_then_run_again_delivers_everything_once(
    context: Runtime, smtp_server: CaptureServer, tmp_path: Path
) -> None:
    add_papers(context, 40, current_window_instant(context))
    emails = bulk_readers(context, READERS)
    config = write_config(
        tmp_path / "config.yaml",
        context.settings.database.url,
        smtp={"host": smtp_server.host, "port": smtp_server.port, "connections": CONNECTIONS},
        delivery={"lease_seconds": 5, "batch_size": 50},
    )

    first = start(config, "send-now", log=tmp_path / "first.log")
    try:
        wait_until(
            lambda: len(smtp_server.messages) >= KILL_AFTER or first.poll() is not None,
            60,
            f"{KILL_AFTER} messages from the first send-now",
        )
        first.send_signal(signal.SIGKILL)
    finally:
        first.wait(10)
    assert first.returncode == -signal.SIGKILL, (tmp_path / "first.log").read_text()
    at_kill = len(smtp_server.messages)
    assert KILL_AFTER <= at_kill < READERS  # really killed part-way

    # The rerun takes the dead process's claims back at once and sends what is left.
    second = start(config, "send-now", log=tmp_path / "second.log")
    assert second.wait(90) == 0, (tmp_path / "second.log").read_text()
    assert "Edition " in (tmp_path / "second.log").read_text()

    received = received_by(smtp_server)
    assert set(received) == set(emails)  # every reader got the edition
    # A message is counted twice only if the server accepted it but the killed process
    # had not yet recorded it as sent: at most one per SMTP connection, since each
    # sending thread marks its message sent before it takes the next one.
    duplicates = sum(received.values()) - READERS
    assert duplicates <= CONNECTIONS, Counter({e: n for e, n in received.items() if n > 1})
    with db.transaction(context.sessions) as session:
        statuses = dict(
            session.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all()
        )
    assert statuses == {"sent": READERS}
