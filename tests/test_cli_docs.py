"""Every command has --help with an example, and the README documents every command."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from newsletter.cli import cli
from tests.conftest import CliResult

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
COMMANDS = sorted(cli.commands)


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
