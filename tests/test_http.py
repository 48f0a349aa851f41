"""Fetching sources over HTTP, against a real local server."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from newsletter.errors import SourceError
from newsletter.sources.fetch import USER_AGENT, FetchPolicy, fetch
from tests.http_server import Answer, ScriptedServer, scripted_server

QUICK = FetchPolicy(timeout=5, retries=2, backoff=0.01, max_wait=0.5)


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with scripted_server() as script:
        yield script


def test_it_returns_the_body_and_identifies_itself(server: ScriptedServer) -> None:
    url = server.route("/papers.json", Answer(200, b"[]"))
    assert fetch(url, QUICK) == b"[]"
    assert server.requests == [("/papers.json", USER_AGENT)]
    assert USER_AGENT.startswith("trending-papers/0.")
    assert USER_AGENT.endswith("(+https://github.com/trending-papers)")


def test_it_retries_a_503_with_growing_backoff(server: ScriptedServer) -> None:
    url = server.route("/flaky", Answer(503), Answer(503), Answer(200, b"ok"))
    waits: list[float] = []
    assert fetch(url, QUICK, sleep=waits.append) == b"ok"
    assert server.hits("/flaky") == 3
    assert waits == [0.01, 0.02]


def test_it_honours_retry_after_on_429(server: ScriptedServer) -> None:
    url = server.route("/limited", Answer(429, headers={"Retry-After": "7"}), Answer(200, b"ok"))
    waits: list[float] = []
    policy = FetchPolicy(retries=1, backoff=0.01, max_wait=30)
    assert fetch(url, policy, sleep=waits.append) == b"ok"
    assert waits == [7.0]


def test_retry_after_is_capped(server: ScriptedServer) -> None:
    url = server.route("/limited", Answer(429, headers={"Retry-After": "86400"}), Answer(200))
    waits: list[float] = []
    fetch(url, QUICK, sleep=waits.append)
    assert waits == [QUICK.max_wait]


def test_it_gives_up_after_the_last_retry_with_one_line(server: ScriptedServer) -> None:
    url = server.route("/down", Answer(503))
    with pytest.raises(SourceError) as caught:
        fetch(url, QUICK, sleep=lambda _s: None)
    assert str(caught.value) == f"{url}: HTTP 503 Service Unavailable"
    assert server.hits("/down") == QUICK.retries + 1


def test_a_404_fails_at_once(server: ScriptedServer) -> None:
    url = server.base_url + "/missing"
    with pytest.raises(SourceError, match=r"/missing: HTTP 404 Not Found$"):
        fetch(url, QUICK, sleep=lambda _s: pytest.fail("a 404 must not be retried"))
    assert server.hits("/missing") == 1


def test_a_body_over_the_cap_is_refused(server: ScriptedServer) -> None:
    url = server.route("/huge", Answer(200, b"x" * 5000))
    with pytest.raises(SourceError, match="larger than 1000 bytes"):
        fetch(url, FetchPolicy(max_bytes=1000))


def test_an_answer_without_length_is_capped_while_reading(server: ScriptedServer) -> None:
    # Chunked answers carry no Content-Length; the cap is enforced while reading.
    body = b"".join(b"%x\r\n%s\r\n" % (100, b"y" * 100) for _ in range(20)) + b"0\r\n\r\n"
    url = server.route("/chunked", Answer(200, body, {"Transfer-Encoding": "chunked"}))
    with pytest.raises(SourceError, match="larger than 1000 bytes"):
        fetch(url, FetchPolicy(max_bytes=1000))


def test_connection_errors_are_retried_then_reported() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    waits: list[float] = []
    with pytest.raises(SourceError, match=rf"127\.0\.0\.1:{port}/x: cannot fetch \(ConnectError"):
        fetch(f"http://127.0.0.1:{port}/x", QUICK, sleep=waits.append)
    assert waits == [0.01, 0.02]
