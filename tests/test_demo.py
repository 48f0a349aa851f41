"""`newsletter demo` runs the whole flow offline, and can run twice."""

from __future__ import annotations

import email
import email.policy
import os
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from newsletter import demo as demo_service
from newsletter.config import Settings, load_settings
from newsletter.planning import weeks
from newsletter.runtime import Runtime
from newsletter.store import db
from newsletter.store.models import Paper
from newsletter.web import create_app
from tests.conftest import ROOT, CliResult


def test_the_demo_sends_each_reader_a_digest_and_can_run_twice(
    run_cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    output = tmp_path / "demo"
    config = str(ROOT / "config.yaml")
    for _ in range(2):
        result = run_cli("--config", config, "demo", "--output", str(output))
        assert result.exit_code == 0, result.stderr
    emls = sorted((output / "mail").glob("*.eml"))
    htmls = sorted((output / "mail").glob("*.html"))
    assert len(emls) == 3 and len(htmls) == 3
    recipients = set()
    for eml in emls:
        message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
        recipients.add(message["To"].addresses[0].addr_spec)
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert recipients == {"ada@example.org", "grace@example.org", "alan@example.org"}
    assert "got" in result.stdout and str(output / "mail") in result.stdout
    assert (output / "demo.db").exists()


def test_the_demo_runs_in_an_empty_folder_without_a_config_file(tmp_path: Path) -> None:
    # As after `pip install`: no config.yaml, no repository around, only the package.
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env |= {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "newsletter", "demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "demo-output" / "mail").glob("*.eml"))) == 3
    assert "Error" not in done.stderr


def test_without_a_config_file_the_defaults_are_the_shipped_topics() -> None:
    shipped = load_settings(ROOT / "config.yaml", environ={})
    assert Settings().topics == shipped.topics
    assert {"llms", "rag", "computer-vision", "healthcare"} <= {t.slug for t in shipped.topics}


def test_the_demo_edition_looks_like_the_product_and_its_links_can_be_served(
    run_cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    output = tmp_path / "demo"
    result = run_cli("--config", str(ROOT / "config.yaml"), "demo", "--output", str(output))
    assert result.exit_code == 0, result.stderr
    now = datetime.now(UTC)
    html = (output / "mail").glob("*ada_at_example.org.html").__next__().read_text()
    # Papers with authors, upvotes, comments, and titles linking to the paper's own page.
    assert re.search(r'href="https://huggingface\.co/papers/\d{4}\.\d{5}"', html)
    assert "/archive/" not in re.findall(r'<a href="([^"]+)" class="tp-title"', html)[0]
    assert re.search(r"&#9650; [1-9]\d* upvotes", html)
    assert re.search(r"[1-9]\d* comments?", html)
    assert "Jinsung Yoon" in html or "Hongjin Qian" in html  # authors of RAG papers
    # Dated in this week's edition, not when the data was recorded.
    schedule = weeks.current_schedule(load_settings(ROOT / "config.yaml").digest, now)
    context = Runtime(load_settings(output / "config.yaml"))
    try:
        with db.transaction(context.sessions) as session:
            listed = list(session.scalars(select(Paper.listed_at)))
        assert listed
        assert all(schedule.window_start <= t.replace(tzinfo=UTC) <= now for t in listed)
        assert schedule.key in result.stdout
        # Paths that open on Linux, and the command that serves the emails' links.
        assert "\n  open " not in result.stdout
        assert "serve" in result.stdout and str(output / "config.yaml") in result.stdout
        link = re.search(r'href="http://127\.0\.0\.1:8000(/preferences/[^"]+)"', html)
        assert link is not None
        page = TestClient(create_app(context)).get(link.group(1))
        assert page.status_code == 200 and "ada@example.org" in page.text
    finally:
        context.close()


def test_the_recorded_papers_move_into_the_edition_current_at_any_moment() -> None:
    config = Settings().digest  # Mondays 08:00 UTC
    for now in (
        datetime(2026, 12, 2, 5, 0, tzinfo=UTC),  # mid-week: the window ended on Monday
        datetime(2026, 11, 30, 7, 0, tzinfo=UTC),  # Monday before the send: it ends now
        datetime(2027, 1, 4, 8, 0, 1, tzinfo=UTC),  # a new year, just after the send
    ):
        schedule = weeks.current_schedule(config, now)
        items = demo_service.redated(config, now)
        listed = [datetime.fromisoformat(i["paper"]["submittedOnDailyAt"]) for i in items]
        assert all(schedule.window_start <= t < min(now, schedule.window_end) for t in listed)
        assert max(listed) > min(now, schedule.window_end) - timedelta(days=1)
        assert all(i["publishedAt"] == i["paper"]["submittedOnDailyAt"] for i in items)
