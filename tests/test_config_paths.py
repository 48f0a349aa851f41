"""Where the config file points: relative SQLite paths, a missing database, the
environment's overrides and an empty file, through the real command line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.conftest import TOPICS, CliResult

RunCli = Callable[..., CliResult]


def write_config(path: Path, **sections: object) -> Path:
    raw = {"secret_key": "test-secret-key-0123456789", "topics": TOPICS, **sections}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder that is not the config file's folder."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def test_a_relative_sqlite_path_is_relative_to_the_config_file(
    run_cli: RunCli, tmp_path: Path, elsewhere: Path
) -> None:
    config = write_config(
        tmp_path / "site" / "config.yaml", database={"url": "sqlite:///data/papers.db"}
    )
    assert run_cli("--config", str(config), "init").exit_code == 0
    assert (tmp_path / "site" / "data" / "papers.db").is_file()
    assert not (elsewhere / "data").exists()
    listed = run_cli("--config", str(config), "subscribers")
    assert listed.exit_code == 0, listed.stderr


def test_a_relative_sqlite_path_from_the_environment_is_relative_to_the_working_folder(
    run_cli: RunCli, tmp_path: Path, elsewhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path / "site" / "config.yaml")
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", "sqlite:///env.db")
    assert run_cli("--config", str(config), "init").exit_code == 0
    assert (elsewhere / "env.db").is_file()
    assert not (tmp_path / "site" / "env.db").exists()


def test_a_command_on_a_missing_database_says_run_init_and_creates_nothing(
    run_cli: RunCli, tmp_path: Path, elsewhere: Path
) -> None:
    config = write_config(
        tmp_path / "site" / "config.yaml", database={"url": "sqlite:///data/papers.db"}
    )
    for command in (["subscribers"], ["status"], ["subscribe", "ada@example.org"]):
        result = run_cli("--config", str(config), *command)
        assert result.exit_code == 1
        expected = f"no database at {tmp_path / 'site' / 'data' / 'papers.db'}"
        assert expected in result.stderr
        assert "run `newsletter init`" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert list(elsewhere.iterdir()) == []
    assert not (tmp_path / "site" / "data").exists()


def test_a_bad_port_in_the_environment_names_the_variable_not_the_file(
    run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path / "config.yaml")
    monkeypatch.setenv("NEWSLETTER_SMTP_PORT", "twenty-five")
    result = run_cli("--config", str(config), "subscribers")
    assert result.exit_code == 1
    line = result.stderr.strip()
    assert "NEWSLETTER_SMTP_PORT" in line
    assert str(config) not in line
    assert "smtp.port" in line


def test_a_bad_port_in_the_file_still_names_the_file(
    run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NEWSLETTER_SMTP_PORT", raising=False)
    config = write_config(tmp_path / "config.yaml", smtp={"port": "twenty-five"})
    result = run_cli("--config", str(config), "subscribers")
    assert result.exit_code == 1
    assert f"{config}: smtp.port" in result.stderr
    assert "NEWSLETTER_" not in result.stderr


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n"])
def test_an_empty_config_file_is_an_error_naming_the_file(
    run_cli: RunCli, tmp_path: Path, elsewhere: Path, text: str
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(text, encoding="utf-8")
    result = run_cli("--config", str(config), "subscribers")
    assert result.exit_code == 1
    assert f"{config}: the config file is empty" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert list(elsewhere.iterdir()) == []


def test_a_trusted_proxy_that_is_not_an_address_is_an_error_naming_the_key(
    run_cli: RunCli, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "config.yaml", web={"trusted_proxies": ["proxy.lan"]})
    result = run_cli("--config", str(config), "subscribers")
    assert result.exit_code == 1
    assert f"{config}: web.trusted_proxies: 'proxy.lan' is not an IP address" in result.stderr
