"""What the commands print: whole lines in pipes, plurals, the words-only notice where it
matters, and the admin's JSON and CSV round trips."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import time_machine
from sqlalchemy import select, update

from newsletter.config import load_settings
from newsletter.mail.capture import CaptureServer
from newsletter.runtime import Runtime
from newsletter.scheduler import Scheduler
from newsletter.store import db
from newsletter.store import subscribers as store_subscribers
from newsletter.store.models import Delivery, Subscriber
from tests.conftest import ROOT, CliResult
from tests.delivery_helpers import add_papers, add_readers, configured

Run = Callable[..., CliResult]


def _initialized(run_cli: Run, config_file: Callable[..., Path], **sections: object) -> str:
    config = str(config_file(**sections))
    assert run_cli("--config", config, "init").exit_code == 0
    return config


def test_messages_to_a_pipe_are_never_wrapped(
    run_cli: Run, config_file: Callable[..., Path]
) -> None:
    config = str(config_file())
    result = run_cli("--config", config, "init")
    line = next(x for x in result.stdout.splitlines() if x.startswith("Created the schema"))
    assert len(line) > 80  # the temporary path makes it long
    assert line.endswith(").") and "store.db (revision" in line


def test_subscribers_json_has_time_zone_and_paused_state(
    run_cli: Run, config_file: Callable[..., Path]
) -> None:
    config = _initialized(run_cli, config_file)
    context = Runtime(load_settings(Path(config)))
    try:
        with db.transaction(context.sessions) as session:
            store_subscribers.add_subscriber(
                session, "ada@example.org", status="active", timezone="Asia/Tokyo"
            )
            store_subscribers.add_subscriber(session, "grace@example.org", status="active")
            session.execute(
                update(Subscriber)
                .where(Subscriber.email == "grace@example.org")
                .values(paused=True)
            )
    finally:
        context.close()
    rows = json.loads(run_cli("--config", config, "subscribers", "--json").stdout)
    assert [(r["email"], r["timezone"], r["paused"]) for r in rows] == [
        ("ada@example.org", "Asia/Tokyo", False),
        ("grace@example.org", None, True),
    ]
    table = run_cli("--config", config, "subscribers").stdout
    assert "Asia/Tokyo" in table and "active (paused)" in table and "2 subscribers." in table


def test_import_reports_a_repeated_address_by_line_and_keeps_its_first_row(
    run_cli: Run, config_file: Callable[..., Path], tmp_path: Path
) -> None:
    config = _initialized(run_cli, config_file)
    csv_file = tmp_path / "readers.csv"
    csv_file.write_text(
        "email,topics\nada@example.org,llms\ngrace@example.org,vision\nADA@example.org,memory\n",
        encoding="utf-8",
    )
    result = run_cli("--config", config, "import-subscribers", str(csv_file))
    assert result.exit_code == 0, result.stderr
    assert "line 4: ada@example.org is already on line 2" in result.stdout
    assert "Imported 2 new and 0 existing subscribers; 1 row skipped." in result.stdout
    rows = json.loads(run_cli("--config", config, "subscribers", "--json").stdout)
    assert {r["email"]: r["topics"] for r in rows}["ada@example.org"] == ["llms"]


def test_import_takes_typed_interests_from_an_optional_column(
    run_cli: Run, config_file: Callable[..., Path], tmp_path: Path
) -> None:
    config = _initialized(run_cli, config_file)
    csv_file = tmp_path / "readers.csv"
    csv_file.write_text(
        "email,topics,interests\n"
        "ada@example.org,llms,point cloud registration; diffusion for video\n"
        "grace@example.org,vision,\n",
        encoding="utf-8",
    )
    assert run_cli("--config", config, "import-subscribers", str(csv_file)).exit_code == 0
    rows = json.loads(run_cli("--config", config, "subscribers", "--json").stdout)
    assert {r["email"]: r["interests"] for r in rows} == {
        "ada@example.org": ["point cloud registration", "diffusion for video"],
        "grace@example.org": [],
    }
    # Without the column, a known reader keeps what they typed; the topics are replaced.
    csv_file.write_text("email,topics\nada@example.org,memory\n", encoding="utf-8")
    result = run_cli("--config", config, "import-subscribers", str(csv_file))
    assert "1 existing subscriber (the file's topics replace theirs)" in result.stdout
    rows = json.loads(run_cli("--config", config, "subscribers", "--json").stdout)
    ada = next(r for r in rows if r["email"] == "ada@example.org")
    assert ada["topics"] == ["memory"]
    assert ada["interests"] == ["point cloud registration", "diffusion for video"]


def test_an_import_where_every_row_is_bad_fails_with_one_line(
    run_cli: Run, config_file: Callable[..., Path], tmp_path: Path
) -> None:
    config = _initialized(run_cli, config_file)
    csv_file = tmp_path / "readers.csv"
    csv_file.write_text("email,topics\nbroken,llms\nada@example.org,no-such-topic\n", "utf-8")
    result = run_cli("--config", config, "import-subscribers", str(csv_file))
    assert result.exit_code == 1
    assert result.stderr == f"Error: {csv_file}: no row could be imported\n"
    assert json.loads(run_cli("--config", config, "subscribers", "--json").stdout) == []


def test_status_counts_retries_in_words(
    run_cli: Run,
    config_file: Callable[..., Path],
    context: Runtime,
    smtp_server: CaptureServer,
) -> None:
    fire = datetime(2026, 11, 29, 18, 0, tzinfo=UTC)  # plans 2026-W49
    ctx = configured(context, smtp_server)
    add_papers(ctx, listed_at=fire - timedelta(days=2))
    add_readers(ctx, 2)
    Scheduler(ctx, clock=lambda: fire).plan_week()
    with db.transaction(ctx.sessions) as session:
        first = session.scalars(select(Delivery.id).order_by(Delivery.id).limit(1)).one()
        session.execute(update(Delivery).where(Delivery.id == first).values(attempts=1))
    with time_machine.travel(fire + timedelta(hours=1), tick=False):
        result = run_cli("--config", str(config_file()), "status")
    assert result.exit_code == 0, result.stderr
    assert "1 delivery waits for a retry" in result.stdout
    assert "(ies)" not in result.stdout


# --- the words-only notice, in real processes where sentence-transformers cannot load ---


def _run_without_the_extra(
    tmp_path: Path, config: str, *args: str
) -> subprocess.CompletedProcess[str]:
    hidden = tmp_path / "hide-semantic"
    (hidden / "sentence_transformers").mkdir(parents=True, exist_ok=True)
    (hidden / "sentence_transformers" / "__init__.py").write_text(
        'raise ImportError("hidden: the semantic extra is not installed here")\n'
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hidden), str(ROOT)])}
    return subprocess.run(
        [sys.executable, "-m", "newsletter", "--config", config, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_without_the_extra_only_matching_commands_say_so_once_with_the_readme_command(
    run_cli: Run, config_file: Callable[..., Path], tmp_path: Path
) -> None:
    config = _initialized(run_cli, config_file, matching={"semantic": "auto"})
    papers = str(ROOT / "tests" / "fixtures" / "hf-daily-papers.json")
    ingested = _run_without_the_extra(tmp_path, config, "ingest", papers)
    assert ingested.returncode == 0, ingested.stderr
    assert "Semantic matching" not in ingested.stdout + ingested.stderr
    matched = _run_without_the_extra(tmp_path, config, "match", "memory", "retrieval")
    assert matched.returncode == 0, matched.stderr
    notices = [x for x in matched.stderr.splitlines() if "Semantic matching is off" in x]
    assert len(notices) == 1, matched.stderr
    assert "make semantic" in notices[0] and "trending-papers[semantic]" in notices[0]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make semantic" in readme and "pip install 'trending-papers[semantic]'" in readme


def test_ingest_counts_records_and_sources_in_words(
    run_cli: Run, config_file: Callable[..., Path]
) -> None:
    config = _initialized(run_cli, config_file)
    papers = str(ROOT / "tests" / "fixtures" / "hf-daily-papers.json")
    result = run_cli("--config", config, "ingest", papers)
    assert result.exit_code == 0, result.stderr
    assert " from 1 source: " in result.stdout and "(s)" not in result.stdout
