"""`newsletter match`: the digest's picks for a query, as a table or one JSON object."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from newsletter.config import load_settings
from newsletter.runtime import Runtime
from newsletter.sources.records import PaperRecord
from newsletter.store import db
from newsletter.store.papers import upsert_papers
from tests.conftest import CliResult
from tests.matching_support import sample_records

Run = Callable[..., CliResult]


@pytest.fixture
def config(config_file: Callable[..., Path]) -> Path:
    # Words only: fast, and the same on machines without the semantic extra.
    path = config_file(matching={"semantic": "off"}, digest={"max_papers": 2})
    context = Runtime(load_settings(path))
    db.upgrade(context.engine)
    recent = datetime.now(UTC) - timedelta(days=1)
    fresh = PaperRecord(
        "arxiv:2601.00001",
        "Fresh point cloud registration",
        "arxiv",
        "Point cloud registration, fast.",
        listed_at=recent,
    )
    with db.transaction(context.sessions) as session:
        upsert_papers(session, [*sample_records(), fresh])
    context.close()
    return path


def test_json_maps_each_query_to_its_picks_best_first(run_cli: Run, config: Path) -> None:
    result = run_cli(
        "--config", str(config), "match", "point cloud registration", "quantum computing", "--json"
    )
    assert result.exit_code == 0, result.stderr
    found = json.loads(result.stdout)
    assert list(found) == ["point cloud registration", "quantum computing"]
    picks = found["point cloud registration"]
    assert len(picks) == 2  # digest.max_papers
    assert {"id", "title", "score", "relevance", "reason"} <= set(picks[0])
    assert picks[0]["score"] >= picks[1]["score"]
    assert found["quantum computing"] == []


def test_days_limits_to_recently_listed_papers(run_cli: Run, config: Path) -> None:
    result = run_cli(
        "--config", str(config), "match", "point cloud registration", "--days", "7", "--json"
    )
    assert [p["id"] for p in json.loads(result.stdout)["point cloud registration"]] == [
        "arxiv:2601.00001"
    ]


def test_a_topic_slug_means_that_topic(run_cli: Run, config: Path) -> None:
    result = run_cli("--config", str(config), "match", "vision", "--json")
    picks = json.loads(result.stdout)["vision"]
    assert picks and "Computer vision" in picks[0]["reason"]


def test_the_table_names_each_paper(run_cli: Run, config: Path) -> None:
    result = run_cli("--config", str(config), "match", "quantum computing", "linear attention")
    assert result.exit_code == 0
    assert "no paper is relevant enough" in result.stdout
    assert "Simple linear attention" in result.stdout


def test_bad_input_is_a_one_line_error(run_cli: Run, config: Path) -> None:
    empty = run_cli("--config", str(config), "match", "  ")
    assert empty.exit_code != 0 and empty.stderr.strip().count("\n") == 0
    assert "empty QUERY" in empty.stderr
    days = run_cli("--config", str(config), "match", "llms", "--days", "0")
    assert days.exit_code != 0 and "Traceback" not in days.stderr


def test_help_shows_an_example(run_cli: Run) -> None:
    result = run_cli("match", "--help")
    assert result.exit_code == 0 and "Example" in result.stdout and "--days" in result.stdout


def test_json_relevance_and_score_stay_on_a_zero_to_one_scale(run_cli: Run, config: Path) -> None:
    # Words only, a topic with a keyword the titles carry in full: the raw sum passes 1.
    result = run_cli("--config", str(config), "match", "vision", "point cloud", "--json")
    assert result.exit_code == 0, result.stderr
    picks = [p for found in json.loads(result.stdout).values() for p in found]
    assert picks
    assert all(0 <= p["relevance"] <= 1 and 0 <= p["score"] <= 1 for p in picks)
    assert any(p["relevance"] == 1 for p in picks)


def test_help_states_the_scale_of_score_and_relevance(run_cli: Run) -> None:
    result = run_cli("match", "--help")
    assert "0–1 scale" in result.stdout
