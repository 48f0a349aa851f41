"""Engines, sessions and schema migrations. The only module that creates sessions.

How a transaction is run, everywhere: a service opens one with
`with db.transaction(context.sessions, immediate=...) as session:` and passes the
session to store functions, which never commit or roll back. It commits when the block
ends and rolls back on any error; `immediate=True` for one that writes after reading
(SQLite's lock, see `transaction`). A dry run or preview uses `db.rolled_back`, the
same unit of work always undone. The exceptions live in the store and say so: sent
marks are group-committed over one held connection (deliveries.SentRecorder), and
interest vectors computed during a plan are kept in a transaction of their own on
PostgreSQL (embeddings.save_vectors_apart), so a rolled-back plan keeps them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import ArgumentError, OperationalError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

from newsletter.errors import ConfigError, NewsletterError, SchemaMissing

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS = Path(__file__).parent / "migrations"
# The newest migration. Every command checks the schema against it before it runs,
# with one query: importing Alembic and reading its scripts would add a quarter of a
# second to each start. tests/test_store_schema.py checks it is Alembic's head.
HEAD_REVISION = "0007"


def make_engine(url: str, **kwargs: Any) -> Engine:
    try:
        engine = create_engine(url, future=True, **kwargs)
    except (ArgumentError, ImportError, ValueError) as exc:
        raise ConfigError(f"database.url: cannot use {url!r}: {exc}") from None
    if engine.dialect.name == "sqlite":
        _prepare_sqlite(engine)
    return engine


def _prepare_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own transaction handling defers BEGIN; take control so that
        # BEGIN IMMEDIATE can serialise writers (see begin_immediate below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "")
        connection.exec_driver_sql(f"BEGIN {mode}".strip())


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(sessions: sessionmaker[Session], immediate: bool = False) -> Iterator[Session]:
    """One unit of work: commits at the end, rolls back everything on any error.

    `immediate` takes SQLite's write lock at BEGIN: pass it for every transaction that
    writes after reading. A deferred one that reads first fails at once with "database
    is locked" when another writer committed meanwhile (the busy timeout cannot help
    it), whereas BEGIN IMMEDIATE waits its turn.
    """
    with _unit(sessions, immediate) as session:
        yield session
        session.commit()


@contextmanager
def rolled_back(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A write transaction that is always undone: dry runs and previews plan for real
    inside it and record nothing. Immediate, as planning writes after reading."""
    with _unit(sessions, immediate=True) as session:
        yield session


@contextmanager
def _unit(sessions: sessionmaker[Session], immediate: bool) -> Iterator[Session]:
    """A session in a transaction, rolled back unless the body committed it."""
    session = sessions()
    try:
        if immediate and session.get_bind().dialect.name == "sqlite":
            session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
        yield session
    finally:
        session.rollback()  # after a commit: nothing left to undo
        session.close()


def _alembic_config(engine: Engine) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    """Alembic's own head (reads every migration script; see HEAD_REVISION)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config(make_engine("sqlite://")))
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The schema's revision, as Alembic keeps it; None for a database without one."""
    try:
        with engine.connect() as connection:
            if not engine.dialect.has_table(connection, "alembic_version"):
                return None
            revision = connection.execute(text("SELECT version_num FROM alembic_version"))
            found: str | None = revision.scalar()
            return found
    except (OperationalError, ProgrammingError) as exc:
        raise NewsletterError(f"cannot connect to the database: {_short(exc)}") from None


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Create or upgrade the schema (to `revision`, tests stop earlier); returns
    (revision before, revision after)."""
    database = sqlite_file(engine)
    if database is not None:
        database.parent.mkdir(parents=True, exist_ok=True)
    from alembic import command

    before = current_revision(engine)
    command.upgrade(_alembic_config(engine), revision)
    return before, current_revision(engine)


def require_schema(engine: Engine) -> None:
    # Connecting would create an empty SQLite file (and a wrong path would go unnoticed).
    database = sqlite_file(engine)
    if database is not None and not database.exists():
        raise SchemaMissing(f"no database at {database}; run `newsletter init`")
    current = current_revision(engine)
    if current is None:
        raise SchemaMissing("the database has no schema yet: run `newsletter init`")
    if current != HEAD_REVISION:
        raise SchemaMissing("the database schema is out of date: run `newsletter init` to upgrade")


def sqlite_file(engine: Engine) -> Path | None:
    """The file of a SQLite database; None for other backends and in-memory ones."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:"):  # a URI filename: SQLite resolves it
        return None
    return Path(database).absolute()


def _short(exc: Exception) -> str:
    return str(getattr(exc, "orig", exc)).strip().splitlines()[0]
