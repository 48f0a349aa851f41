"""config.yaml loading: typed, validated, errors that name the key and the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.config import load_settings, resolve_path
from newsletter.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_config_is_valid() -> None:
    settings = load_settings(ROOT / "config.yaml", environ={})
    assert settings.database.url == f"sqlite:///{ROOT / 'newsletter.db'}"  # next to the file
    assert settings.digest.weekday == "monday"
    assert len(settings.topics) >= 8


def test_unset_keys_take_the_embedded_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "digest:\n  weekday: monday\n"), environ={})
    assert settings.database.url == "sqlite:///newsletter.db"
    assert settings.smtp.security == "none"
    assert settings.smtp.max_rate is None
    assert settings.secret_key is None


def test_an_unknown_key_names_the_key_and_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "smtp:\n  hostname: mail.example.org\n")
    with pytest.raises(ConfigError) as error:
        load_settings(path, environ={})
    assert str(path) in str(error.value)
    assert "smtp.hostname" in str(error.value)


def test_a_wrong_type_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"smtp\.port"):
        load_settings(write(tmp_path, "smtp:\n  port: lots\n"), environ={})


def test_a_missing_required_value_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing required key 'topics\.0\.name'"):
        load_settings(write(tmp_path, "topics:\n  - slug: llms\n"), environ={})


def test_an_unknown_time_zone_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"digest\.timezone: unknown time zone 'Mars/Olympus'"):
        load_settings(write(tmp_path, "digest:\n  timezone: Mars/Olympus\n"), environ={})


def test_invalid_yaml_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(write(tmp_path, "site: [unclosed\n"), environ={})
    assert "not valid YAML" in str(error.value)
    assert "\n" not in str(error.value)


def test_a_missing_file_says_how_to_point_at_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.yaml", environ={})


def test_secrets_come_from_the_environment(tmp_path: Path) -> None:
    environ = {
        "NEWSLETTER_SECRET_KEY": "from-the-environment-0123456789",
        "NEWSLETTER_SMTP_PASSWORD": "hunter2",
    }
    settings = load_settings(write(tmp_path, "smtp:\n  username: papers\n"), environ=environ)
    assert settings.secret_key == "from-the-environment-0123456789"
    assert settings.smtp.password == "hunter2"
    assert settings.smtp.username == "papers"


def test_duplicate_topic_slugs_are_rejected(tmp_path: Path) -> None:
    text = "topics:\n  - {slug: llms, name: A}\n  - {slug: llms, name: B}\n"
    with pytest.raises(ConfigError, match="appears twice"):
        load_settings(write(tmp_path, text), environ={})


def test_a_sender_name_with_a_line_break_is_rejected(tmp_path: Path) -> None:
    text = 'sender:\n  from_name: "Papers\\r\\nBcc: victim@example.org"\n'
    with pytest.raises(ConfigError, match=r"sender\.from_name"):
        load_settings(write(tmp_path, text), environ={})


def test_source_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    settings = load_settings(
        write(tmp_path, "sources:\n  - {format: jsonl, path: papers.jsonl}\n"), environ={}
    )
    assert settings.sources[0].path == tmp_path / "papers.jsonl"


def test_a_source_needs_exactly_one_location(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="exactly one of url or path"):
        load_settings(write(tmp_path, "sources:\n  - {format: hf}\n"), environ={})


def test_the_path_comes_from_the_flag_then_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_CONFIG", "/etc/newsletter.yaml")
    assert resolve_path("given.yaml") == Path("given.yaml")
    assert resolve_path(None) == Path("/etc/newsletter.yaml")
    monkeypatch.delenv("NEWSLETTER_CONFIG")
    assert resolve_path(None) == Path("config.yaml")
