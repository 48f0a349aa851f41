"""`newsletter serve` on the shipped default database (a SQLite file) under a burst of
subscribes: every request is answered, none with a server error."""

from __future__ import annotations

import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from newsletter.mail.capture import CaptureServer
from newsletter.runtime import Runtime
from newsletter.store import db
from tests.conftest import make_settings
from tests.process_helpers import start, write_config
from tests.test_serve import free_port, healthy, wait_until

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
BURST = 100
OPEN_LIMITS = {"subscribe_rate_per_hour": 1_000_000, "subscribe_burst": 10_000}


@pytest.fixture
def server(tmp_path: Path, smtp_server: CaptureServer) -> Iterator[str]:
    """`newsletter serve` on a migrated SQLite file, mailing the capture server."""
    url = f"sqlite:///{tmp_path / 'newsletter.db'}"
    context = Runtime(make_settings(url))
    db.upgrade(context.engine)
    context.close()
    config = write_config(
        tmp_path / "config.yaml",
        url,
        smtp={"host": smtp_server.host, "port": smtp_server.port},
        web=OPEN_LIMITS,
    )
    port = free_port()
    log = tmp_path / "serve.log"
    process = start(config, "serve", "--port", str(port), "--no-scheduler", log=log)
    try:
        assert wait_until(lambda: healthy(port)), log.read_text()
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)


def subscribe(client: httpx.Client, base: str, address: str) -> int:
    token = CSRF.search(client.get(f"{base}/").text)
    assert token, "the home page has no CSRF field"
    data = {"csrf_token": token.group(1), "email": address, "topic": ["llms"]}
    return client.post(f"{base}/subscribe", data=data, timeout=120).status_code


def test_a_burst_of_concurrent_subscribes_on_sqlite_gets_no_server_error(
    server: str, smtp_server: CaptureServer
) -> None:
    clients = [httpx.Client() for _ in range(BURST)]
    tokens = [CSRF.search(c.get(f"{server}/").text) for c in clients]
    assert all(tokens)
    gate = threading.Barrier(BURST)

    def post(i: int) -> int:
        token = tokens[i]
        assert token is not None
        data = {"csrf_token": token.group(1), "email": f"burst{i}@example.org", "topic": "llms"}
        gate.wait()
        return clients[i].post(f"{server}/subscribe", data=data, timeout=120).status_code

    try:
        with ThreadPoolExecutor(BURST) as pool:
            statuses = list(pool.map(post, range(BURST)))
    finally:
        for client in clients:
            client.close()
    assert statuses == [303] * BURST
    assert wait_until(lambda: len(smtp_server.messages) == BURST, seconds=60)


def test_subscribes_one_after_another_on_one_connection_all_succeed(
    server: str, smtp_server: CaptureServer
) -> None:
    with httpx.Client() as client:
        statuses = [subscribe(client, server, f"seq{i}@example.org") for i in range(BURST)]
    assert statuses == [303] * BURST
    assert wait_until(lambda: len(smtp_server.messages) == BURST, seconds=60)
