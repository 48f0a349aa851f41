"""`newsletter serve` as a real process: the web app answers and the scheduler leads."""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from newsletter.runtime import Runtime
from newsletter.status import LEASE_NAME
from newsletter.store import db, leases
from newsletter.store.models import utcnow
from tests.process_helpers import start, write_config


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def scheduler_leader(context: Runtime) -> str | None:
    with db.transaction(context.sessions) as session:
        found = leases.holder(session, LEASE_NAME, utcnow())
        return None if found is None else found.owner


def test_serve_answers_runs_the_scheduler_and_stops_cleanly(
    context: Runtime, tmp_path: Path
) -> None:
    port = free_port()
    config = write_config(
        tmp_path / "serve.yaml", context.settings.database.url, schedule={"lease_seconds": 5}
    )
    process = start(config, "serve", "--port", str(port), log=tmp_path / "serve.log")
    try:
        assert wait_until(lambda: healthy(port)), (tmp_path / "serve.log").read_text()
        assert (
            "Get trending papers in your email inbox!"
            in httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text
        )
        assert wait_until(lambda: scheduler_leader(context) is not None)
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
    assert code == 0, (tmp_path / "serve.log").read_text()
    assert scheduler_leader(context) is None  # a clean stop hands the lease over at once


def test_serve_without_the_scheduler_never_takes_the_lease(
    context: Runtime, tmp_path: Path
) -> None:
    port = free_port()
    config = write_config(tmp_path / "serve.yaml", context.settings.database.url)
    process = start(
        config, "serve", "--port", str(port), "--no-scheduler", log=tmp_path / "serve.log"
    )
    try:
        assert wait_until(lambda: healthy(port)), (tmp_path / "serve.log").read_text()
        time.sleep(1)
        assert scheduler_leader(context) is None
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
