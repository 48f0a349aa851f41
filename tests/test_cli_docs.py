"""Every command has --help with an example, and the README documents every command."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import click
import pytest

from newsletter.cli import cli
from newsletter.cli.base import COMMAND_MODULES
from tests.conftest import ROOT, CliResult

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
COMMANDS = cli.list_commands(click.Context(cli))


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help_with_an_example(
    run_cli: Callable[..., CliResult], name: str
) -> None:
    result = run_cli(name, "--help")
    assert result.exit_code == 0
    assert "Example" in result.stdout and f"newsletter {name}" in result.stdout


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_is_in_the_readme(name: str) -> None:
    assert f"newsletter {name}" in README


def test_the_design_commands_all_exist() -> None:
    expected = {
        "init",
        "ingest",
        "subscribe",
        "unsubscribe",
        "subscribers",
        "import-subscribers",
        "match",
        "preview",
        "send-now",
        "worker",
        "serve",
        "demo",
    }
    assert expected <= set(COMMANDS)


def test_each_listed_command_is_registered_by_the_module_named_for_it() -> None:
    for module in set(COMMAND_MODULES.values()):
        importlib.import_module(f"newsletter.cli.{module}")
    assert sorted(cli.commands) == COMMANDS
    for name, module in COMMAND_MODULES.items():
        callback = cli.commands[name].callback
        assert callback is not None and callback.__module__ == f"newsletter.cli.{module}"


def test_send_now_loads_neither_the_web_server_nor_the_scheduler_nor_the_feed_readers(
    tmp_path: Path,
) -> None:
    probe = (
        "import sys\n"
        "from newsletter.cli import main\n"
        "try:\n"
        "    main(sys.argv[1:])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in ('uvicorn', 'fastapi', 'apscheduler', 'aiosmtpd', 'feedparser',"
        " 'httpx', 'dkim') if m in sys.modules))\n"
    )
    config = tmp_path / "missing.yaml"  # loading stops at the config: imports are what counts
    found = subprocess.run(
        [sys.executable, "-c", probe, "--config", str(config), "send-now", "--dry-run"],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert found.stdout.splitlines()[-1] == "[]", found.stdout + found.stderr
