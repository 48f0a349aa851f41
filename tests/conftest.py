"""Shared fixtures: real SQLite files, the running PostgreSQL, a real SMTP server."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from newsletter.config import Settings, parse_settings
from newsletter.mail.capture import CaptureServer
from newsletter.runtime import Runtime
from newsletter.store import db

# Fixtures of support modules that several test modules share.
pytest_plugins = ["tests.admin_support"]

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"
POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

TOPICS = [
    {"slug": "llms", "name": "Large language models", "keywords": ["language model", "LLM"]},
    {"slug": "vision", "name": "Computer vision", "keywords": ["image", "point cloud"]},
    {"slug": "memory", "name": "Memory", "keywords": ["memory", "memorization"]},
]


def _postgres_available() -> str | None:
    try:
        engine = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 2})
        with engine.connect() as connection:
            connection.execute(sa.text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any failure means: skip, and say why
        return f"PostgreSQL not reachable at 127.0.0.1:5432 ({type(exc).__name__})"


_PG_SKIP_REASON = _postgres_available()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh schema on the running PostgreSQL, dropped afterwards."""
    if _PG_SKIP_REASON:
        pytest.skip(_PG_SKIP_REASON)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using it runs twice: on a SQLite file and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


def make_settings(database_url: str, **sections: Any) -> Settings:
    raw: dict[str, Any] = {
        "database": {"url": database_url},
        "secret_key": "test-secret-key-0123456789",
        "topics": TOPICS,
    }
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values} if isinstance(values, dict) else values
    return parse_settings(raw)


@pytest.fixture
def settings(sqlite_url: str) -> Settings:
    return make_settings(sqlite_url)


@pytest.fixture
def context(settings: Settings) -> Iterator[Runtime]:
    """A migrated SQLite store."""
    ctx = Runtime(settings)
    db.upgrade(ctx.engine)
    yield ctx
    ctx.close()


@pytest.fixture
def any_context(database_url: str) -> Iterator[Runtime]:
    """A migrated store, once on SQLite and once on PostgreSQL."""
    ctx = Runtime(make_settings(database_url))
    db.upgrade(ctx.engine)
    yield ctx
    ctx.close()


@pytest.fixture
def smtp_server() -> Iterator[CaptureServer]:
    with CaptureServer() as server:
        yield server


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run `newsletter ARGS…` in-process through the real entry point."""
    from newsletter.cli import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return run


@pytest.fixture
def config_file(tmp_path: Path, sqlite_url: str) -> Callable[..., Path]:
    """Write a config.yaml for CLI tests; keyword sections override the defaults."""
    import yaml

    def write(**sections: Any) -> Path:
        raw: dict[str, Any] = {
            "database": {"url": sqlite_url},
            "secret_key": "test-secret-key-0123456789",
            "topics": TOPICS,
        }
        raw.update(sections)
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(raw), encoding="utf-8")
        return path

    return write
