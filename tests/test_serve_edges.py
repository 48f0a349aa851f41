"""`newsletter serve` at its edges, on a real uvicorn server on loopback: forwarded
client addresses, the trailing-slash redirect, HEAD requests and the cached home page."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from newsletter.ingest import ingest
from newsletter.runtime import Runtime
from newsletter.web import create_app
from tests.process_helpers import start, write_config
from tests.test_serve import free_port, healthy, wait_until

Serve = Callable[..., str]


@pytest.fixture
def serve(context: Runtime, tmp_path: Path) -> Iterator[Serve]:
    """Start `newsletter serve` with these config sections; returns its base URL."""
    processes = []

    def run(**sections: Any) -> str:
        config = write_config(tmp_path / "serve.yaml", context.settings.database.url, **sections)
        port = free_port()
        log = tmp_path / f"serve-{port}.log"
        process = start(config, "serve", "--port", str(port), "--no-scheduler", log=log)
        processes.append(process)
        assert wait_until(lambda: healthy(port)), log.read_text()
        return f"http://127.0.0.1:{port}"

    yield run
    for process in processes:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def posts(base: str, forwarded_for: list[str]) -> list[int]:
    """POST /subscribe once per address, each claiming to come from it."""
    with httpx.Client() as client:
        return [
            client.post(
                f"{base}/subscribe",
                data={"email": "a@example.org"},
                headers={"X-Forwarded-For": ip},
            ).status_code
            for ip in forwarded_for
        ]


def test_x_forwarded_for_does_not_bypass_the_rate_limit_without_a_trusted_proxy(
    serve: Serve,
) -> None:
    base = serve(web={"subscribe_burst": 2, "subscribe_rate_per_hour": 1})
    # Without a CSRF token each post is refused (403), but only after the limit counted it.
    assert posts(base, ["203.0.113.1", "203.0.113.2", "203.0.113.3"]) == [403, 403, 429]


def test_a_configured_proxy_is_trusted_for_the_client_address(serve: Serve) -> None:
    base = serve(
        web={
            "subscribe_burst": 2,
            "subscribe_rate_per_hour": 1,
            "trusted_proxies": ["127.0.0.0/8", "::1"],
        }
    )
    assert posts(base, ["203.0.113.1", "203.0.113.2", "203.0.113.3"]) == [403, 403, 403]
    assert posts(base, ["198.51.100.7"] * 3) == [403, 403, 429]


def test_the_trailing_slash_redirect_never_names_the_host_header(serve: Serve) -> None:
    base = serve()
    answer = httpx.get(
        f"{base}/archive/?page=2", headers={"Host": "evil.example"}, follow_redirects=False
    )
    assert answer.status_code in (307, 308)
    assert answer.headers["location"] == "/archive?page=2"
    assert httpx.get(f"{base}//evil.example/", follow_redirects=False).status_code == 404


@pytest.mark.parametrize("path", ["/", "/healthz", "/archive"])
def test_head_answers_like_get_without_a_body(serve: Serve, path: str) -> None:
    base = serve()
    with httpx.Client() as client:
        answer = client.head(f"{base}{path}")
        assert answer.status_code == 200
        assert answer.content == b""
        # The connection is still usable: no stray body bytes were sent after the headers.
        assert client.get(f"{base}{path}").status_code == 200


def test_a_405_names_head_with_get(context: Runtime) -> None:
    with TestClient(create_app(context)) as client:
        answer = client.request("OPTIONS", "/healthz")
    assert answer.status_code == 405 and answer.headers["allow"] == "GET, HEAD"


def test_a_405_names_every_method_of_the_path(context: Runtime) -> None:
    with TestClient(create_app(context)) as client:
        answer = client.request("OPTIONS", "/confirm/abc.def.ghi")
    assert answer.status_code == 405 and answer.headers["allow"] == "GET, HEAD, POST"


# --- the home page is computed once per change of the listings -----------------------


def window_queries(context: Runtime) -> list[str]:
    """Every SQL statement that reads the papers of the trending window, as run."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "FROM papers" in statement and "listed_at >=" in statement:
            seen.append(statement)

    event.listen(context.engine, "before_cursor_execute", record)
    return seen


def feed(tmp_path: Path, name: str, *papers: tuple[str, str, int]) -> str:
    listed = datetime.now(UTC).replace(microsecond=0).isoformat()
    path = tmp_path / name
    lines = [
        json.dumps({"id": pid, "title": title, "upvotes": upvotes, "listed_at": listed})
        for pid, title, upvotes in papers
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_the_home_page_is_computed_again_only_when_the_listings_change(
    context: Runtime, tmp_path: Path
) -> None:
    ingest(context, [feed(tmp_path, "a.jsonl", ("arxiv:2411.00001", "Quiet paper", 3))])
    queries = window_queries(context)
    with TestClient(create_app(context)) as client:
        assert "Quiet paper" in client.get("/").text
        assert len(queries) == 1
        for _ in range(3):
            assert "Quiet paper" in client.get("/").text
        assert len(queries) == 1  # nothing changed: the cached page papers were used

        ingest(context, [feed(tmp_path, "b.jsonl", ("arxiv:2411.00002", "Loud paper", 1))])
        page = client.get("/").text
        assert "Loud paper" in page and page.index("Quiet paper") < page.index("Loud paper")
        assert len(queries) == 2

        # new upvotes on a known paper (an update, no new listing) reorder the page too
        ingest(context, [feed(tmp_path, "c.jsonl", ("arxiv:2411.00002", "Loud paper", 90))])
        page = client.get("/").text
        assert page.index("Loud paper") < page.index("Quiet paper")
        assert len(queries) == 3


def test_the_home_page_cache_sees_an_ingest_by_another_process(
    context: Runtime, tmp_path: Path, run_cli: Callable[..., Any]
) -> None:
    config = write_config(tmp_path / "cli.yaml", context.settings.database.url)
    with TestClient(create_app(context)) as client:
        assert "Fresh paper" not in client.get("/").text
        first = feed(tmp_path, "a.jsonl", ("arxiv:2411.00003", "Fresh paper", 5))
        assert run_cli("--config", str(config), "ingest", first).exit_code == 0
        assert "Fresh paper" in client.get("/").text
