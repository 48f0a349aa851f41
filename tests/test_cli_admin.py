"""The admin commands through the real entry point: output, exit codes, one-line errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from newsletter.mail.capture import CaptureServer
from tests.conftest import CliResult

Run = Callable[..., CliResult]


def test_init_creates_then_reports_an_up_to_date_schema(
    run_cli: Run, config_file: Callable[..., Path]
) -> None:
    config = str(config_file())
    first = run_cli("--config", config, "init")
    assert first.exit_code == 0, first.stderr
    assert "Created the schema" in first.stdout
    second = run_cli("--config", config, "init")
    assert "up to date" in second.stdout


def test_a_command_before_init_asks_for_init(
    run_cli: Run, config_file: Callable[..., Path]
) -> None:
    config = config_file()
    result = run_cli("--config", str(config), "subscribers")
    assert result.exit_code == 1
    database = config.parent / "store.db"
    assert result.stderr.strip() == f"Error: no database at {database}; run `newsletter init`"


def test_a_broken_config_is_one_line_naming_key_and_file(run_cli: Run, tmp_path: Path) -> None:
    config = tmp_path / "broken.yaml"
    config.write_text("digest:\n  max_papers: many\n", encoding="utf-8")
    result = run_cli("--config", str(config), "subscribers")
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert str(config) in result.stderr and "digest.max_papers" in result.stderr


def test_subscribe_confirmed_then_list_as_json(
    run_cli: Run, config_file: Callable[..., Path]
) -> None:
    config = str(config_file())
    run_cli("--config", config, "init")
    added = run_cli(
        "--config", config, "subscribe", "Ada@Example.org", "--topic", "llms", "--confirmed"
    )
    assert added.exit_code == 0, added.stderr
    run_cli(
        "--config", config, "subscribe", "grace@example.org", "--topic", "vision", "--confirmed"
    )
    run_cli("--config", config, "unsubscribe", "grace@example.org")
    listing = run_cli("--config", config, "subscribers", "--json")
    rows = json.loads(listing.stdout)
    assert [(r["email"], r["status"], r["topics"]) for r in rows] == [
        ("ada@example.org", "active", ["llms"]),
        ("grace@example.org", "unsubscribed", ["vision"]),
    ]


def test_an_invalid_address_is_refused_and_nothing_is_stored(
    run_cli: Run, config_file: Callable[..., Path]
) -> None:
    config = str(config_file())
    run_cli("--config", config, "init")
    result = run_cli("--config", config, "subscribe", "not-an-address", "--confirmed")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: invalid email address 'not-an-address'")
    assert json.loads(run_cli("--config", config, "subscribers", "--json").stdout) == []


def test_import_subscribers_reports_bad_rows_and_loads_the_rest(
    run_cli: Run, config_file: Callable[..., Path], tmp_path: Path
) -> None:
    config = str(config_file())
    run_cli("--config", config, "init")
    csv_file = tmp_path / "readers.csv"
    csv_file.write_text("email,topics\nada@example.org,llms\nbroken,llms\n", encoding="utf-8")
    result = run_cli("--config", config, "import-subscribers", str(csv_file))
    assert result.exit_code == 0
    assert "line 3" in result.stdout and "Imported 1 new" in result.stdout


def test_a_missing_csv_is_a_one_line_error(
    run_cli: Run, config_file: Callable[..., Path], tmp_path: Path
) -> None:
    config = str(config_file())
    run_cli("--config", config, "init")
    result = run_cli("--config", config, "import-subscribers", str(tmp_path / "none.csv"))
    assert result.exit_code == 1
    assert "none.csv: file not found" in result.stderr


def test_subscribe_without_confirmed_mails_a_confirmation_link(
    run_cli: Run, config_file: Callable[..., Path], smtp_server: CaptureServer
) -> None:
    config = str(config_file(smtp={"host": smtp_server.host, "port": smtp_server.port}))
    run_cli("--config", config, "init")
    result = run_cli("--config", config, "subscribe", "ada@example.org", "--topic", "llms")
    assert result.exit_code == 0, result.stderr
    assert "Sent a confirmation email to ada@example.org" in result.stdout
    [received] = smtp_server.messages
    assert received.recipients == ("ada@example.org",)
    assert b"/confirm/" in received.data.replace(b"=\r\n", b"")
    rows = json.loads(run_cli("--config", config, "subscribers", "--json").stdout)
    assert rows[0]["status"] == "pending"
