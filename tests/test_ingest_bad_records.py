"""Hostile records in a feed: NUL bytes, control characters, broken Unicode and giant
fields. Each bad record is skipped (or cleaned) with one line; the rest load, on SQLite
and on PostgreSQL, through `newsletter ingest`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from newsletter.runtime import Runtime
from newsletter.store import db
from newsletter.store.papers import all_papers
from newsletter.web import create_app
from tests.conftest import CliResult, make_settings
from tests.process_helpers import write_config

Run = Callable[..., CliResult]
LISTED = "2026-11-30T09:00:00Z"


def paper(number: int, **fields: Any) -> dict[str, Any]:
    return {
        "id": f"arxiv:2411.{number:05d}",
        "title": f"A sound paper number {number}",
        "abstract": "Language models, measured carefully.",
        "upvotes": number,
        "listed_at": LISTED,
        **fields,
    }


def jsonl(path: Path, *papers: dict[str, Any]) -> str:
    # ensure_ascii keeps "\u0000" and lone surrogates as JSON escapes, as feeds send them
    path.write_text("".join(json.dumps(p) + "\n" for p in papers), encoding="utf-8")
    return str(path)


@pytest.fixture
def store(database_url: str) -> Iterator[Runtime]:
    context = Runtime(make_settings(database_url))
    db.upgrade(context.engine)
    yield context
    context.close()


@pytest.fixture
def config(store: Runtime, tmp_path: Path) -> str:
    return str(write_config(tmp_path / "config.yaml", store.settings.database.url))


def stored(context: Runtime) -> dict[str, tuple[str, str, tuple[str, ...]]]:
    with db.transaction(context.sessions) as session:
        return {p.external_id: (p.title, p.abstract, tuple(p.authors)) for p in all_papers(session)}


def skipped_lines(result: CliResult) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith("skipped")]


def test_a_record_with_a_nul_byte_is_skipped_and_the_others_load(
    store: Runtime, config: str, run_cli: Run, tmp_path: Path
) -> None:
    feed = jsonl(
        tmp_path / "feed.jsonl",
        paper(1),
        paper(2, abstract="Binary \u0000 junk"),
        paper(3),
    )
    result = run_cli("--config", config, "ingest", feed)
    assert result.exit_code == 0, result.stderr
    assert skipped_lines(result) == [
        f"skipped {feed} line 2: abstract contains a NUL byte (binary data, not text)"
    ]
    assert sorted(stored(store)) == ["arxiv:2411.00001", "arxiv:2411.00003"]


def test_a_lone_surrogate_is_skipped_and_the_others_load(
    store: Runtime, config: str, run_cli: Run, tmp_path: Path
) -> None:
    feed = jsonl(tmp_path / "feed.jsonl", paper(1, title="Broken \ud800 text"), paper(2))
    result = run_cli("--config", config, "ingest", feed)
    assert result.exit_code == 0, result.stderr
    assert skipped_lines(result) == [
        f"skipped {feed} line 1: title is not valid Unicode text (a lone surrogate)"
    ]
    assert sorted(stored(store)) == ["arxiv:2411.00002"]


def test_control_characters_are_removed_before_they_reach_the_store_or_the_pages(
    store: Runtime, config: str, run_cli: Run, tmp_path: Path
) -> None:
    feed = jsonl(
        tmp_path / "feed.jsonl",
        paper(
            1,
            title="Bell\u0007 and \u001b[31mescape\u009b",
            abstract="Form\u000cfeed and\u0001 start",
            authors=["Ada\u0008 Lovelace"],
        ),
    )
    result = run_cli("--config", config, "ingest", feed)
    assert result.exit_code == 0, result.stderr
    assert stored(store) == {
        "arxiv:2411.00001": ("Bell and [31mescape", "Form feed and start", ("Ada Lovelace",))
    }
    with TestClient(create_app(store)) as client:
        home = client.get("/").text
    assert "Bell and [31mescape" in home
    assert not any((ord(c) < 32 and c not in "\t\n\r") or 0x7F <= ord(c) <= 0x9F for c in home)


def test_giant_fields_are_refused_with_their_size(
    store: Runtime, config: str, run_cli: Run, tmp_path: Path
) -> None:
    feed = jsonl(
        tmp_path / "feed.jsonl",
        paper(1, title="T" * 300_000),
        paper(2, abstract="word " * 1_000_000),
        paper(3, abstract="A long but real abstract. " * 600),
        paper(4, upvotes=2**40),
    )
    result = run_cli("--config", config, "ingest", feed)
    assert result.exit_code == 0, result.stderr
    assert skipped_lines(result) == [
        f"skipped {feed} line 1: title is 300,000 characters long (at most 1,000)",
        f"skipped {feed} line 2: abstract is 4,999,999 characters long (at most 20,000)",
        f"skipped {feed} line 4: upvotes 1,099,511,627,776 is out of range (at most 2,147,483,647)",
    ]
    assert sorted(stored(store)) == ["arxiv:2411.00003"]
