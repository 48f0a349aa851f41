"""The schema: created and upgraded by `init`, required by every other command."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from newsletter.errors import SchemaMissing
from newsletter.runtime import Runtime
from newsletter.store import db
from newsletter.store.models import Base, Delivery, Edition, Paper, Subscriber
from newsletter.store.statuses import (
    DeliveryKind,
    DeliveryStatus,
    EditionStatus,
    SubscriberStatus,
)
from tests.conftest import make_settings


def test_the_revision_every_command_checks_is_alembics_head() -> None:
    # A new migration must bump db.HEAD_REVISION, or commands would call the
    # upgraded schema out of date (or an old one current).
    assert db.head_revision() == db.HEAD_REVISION


def test_upgrade_creates_every_table_and_is_idempotent(database_url: str) -> None:
    engine = db.make_engine(database_url)
    assert db.upgrade(engine)[0] is None
    before, after = db.upgrade(engine)
    assert before == after == db.head_revision()
    tables = set(sa.inspect(engine).get_table_names())
    assert {
        "papers",
        "subscribers",
        "subscriber_topics",
        "subscriber_interests",
        "editions",
        "deliveries",
        "delivery_papers",
        "delivery_attempts",
        "edition_papers",
    } <= tables
    engine.dispose()


def test_a_store_without_schema_asks_for_init(database_url: str) -> None:
    engine = db.make_engine(database_url)
    with pytest.raises(SchemaMissing, match="newsletter init"):
        db.require_schema(engine)
    engine.dispose()


def test_times_come_back_aware_in_utc(any_context: Runtime) -> None:
    berlin = timezone(timedelta(hours=1))
    listed = datetime(2026, 3, 11, 9, 30, tzinfo=berlin)
    with db.transaction(any_context.sessions) as session:
        session.add(
            Paper(external_id="arxiv:2403.00001", title="T", source="json", listed_at=listed)
        )
    with db.transaction(any_context.sessions) as session:
        paper = session.scalars(sa.select(Paper)).one()
        assert paper.listed_at == listed
        assert paper.listed_at.tzinfo is not None
        assert paper.listed_at.utcoffset() == timedelta(0)
        assert paper.ingested_at.tzinfo == UTC


def test_a_failed_transaction_leaves_nothing_behind(any_context: Runtime) -> None:
    with pytest.raises(RuntimeError), db.transaction(any_context.sessions) as session:
        session.add(
            Paper(
                external_id="arxiv:2403.00002",
                title="T",
                source="json",
                listed_at=datetime.now(UTC),
            )
        )
        session.flush()
        raise RuntimeError("boom")
    with db.transaction(any_context.sessions) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Paper)) == 0


def test_a_generated_secret_key_is_shared_by_every_process(sqlite_url: str) -> None:
    settings = make_settings(sqlite_url).model_copy(update={"secret_key": None})
    first, second = Runtime(settings), Runtime(settings)
    db.upgrade(first.engine)
    assert len(first.secret_key) >= 32
    assert second.secret_key == first.secret_key


def test_the_migrations_build_the_schema_the_models_describe(database_url: str) -> None:
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
        inspector = sa.inspect(connection)
        for table in Base.metadata.sorted_tables:
            migrated = {c["name"] for c in inspector.get_check_constraints(table.name)}
            modelled = {c.name for c in table.constraints if isinstance(c, sa.CheckConstraint)}
            assert migrated == modelled, table.name
    engine.dispose()


def _insert(context: Runtime, table: str, **values: object) -> None:
    with db.transaction(context.sessions) as session:
        session.execute(Base.metadata.tables[table].insert().values(**values))


def _an_edition(context: Runtime, status: str = "sending") -> None:
    at = datetime(2026, 11, 23, tzinfo=UTC)
    window = {"window_start": at, "window_end": at, "scheduled_for": at, "created_at": at}
    _insert(context, "editions", id=1, key="2026-W48", status=status, **window)


def _a_subscriber(context: Runtime, status: str = "active", id: int = 1) -> None:
    _insert(
        context,
        "subscribers",
        id=id,
        email=f"reader{id}@example.org",
        status=status,
        paused=False,
        hard_bounces=0,
        created_at=datetime.now(UTC),
    )


def _a_delivery(context: Runtime, status: str = "queued", kind: str = "digest") -> None:
    _insert(
        context,
        "deliveries",
        edition_id=1,
        subscriber_id=1,
        kind=kind,
        status=status,
        attempts=0,
        next_attempt_at=datetime.now(UTC),
        created_at=datetime.now(UTC),
    )


def test_the_database_refuses_an_unknown_subscriber_status(any_context: Runtime) -> None:
    with pytest.raises(sa.exc.IntegrityError, match=r"(?i)check"):
        _a_subscriber(any_context, status="sleeping")


def test_the_database_refuses_an_unknown_edition_status(any_context: Runtime) -> None:
    with pytest.raises(sa.exc.IntegrityError, match=r"(?i)check"):
        _an_edition(any_context, status="cancelled")


def test_the_database_refuses_an_unknown_delivery_status(any_context: Runtime) -> None:
    _an_edition(any_context)
    _a_subscriber(any_context)
    with pytest.raises(sa.exc.IntegrityError, match=r"(?i)check"):
        _a_delivery(any_context, status="lost")


def test_the_database_refuses_an_unknown_delivery_kind(any_context: Runtime) -> None:
    _an_edition(any_context)
    _a_subscriber(any_context)
    with pytest.raises(sa.exc.IntegrityError, match=r"(?i)check"):
        _a_delivery(any_context, kind="weekly")


def test_every_status_the_code_knows_is_accepted(any_context: Runtime) -> None:
    _an_edition(any_context)
    _a_subscriber(any_context)
    _a_delivery(any_context)
    statuses = (
        (Subscriber, "status", SubscriberStatus),
        (Edition, "status", EditionStatus),
        (Delivery, "status", DeliveryStatus),
        (Delivery, "kind", DeliveryKind),
    )
    for model, column, values in statuses:
        for value in values:
            with db.transaction(any_context.sessions) as session:
                session.execute(sa.update(model).values({column: value}))


def test_adding_the_status_checks_keeps_every_row(database_url: str) -> None:
    context = Runtime(make_settings(database_url))
    try:
        assert db.upgrade(context.engine, "0003") == (None, "0003")
        _an_edition(context, status="done")
        _a_subscriber(context, status="unsubscribed")
        _insert(context, "subscriber_topics", subscriber_id=1, topic="llms")
        _insert(context, "subscriber_interests", subscriber_id=1, text="diffusion")
        _a_delivery(context, status="sent", kind="quiet")
        before = _every_row(context)
        assert db.upgrade(context.engine, "0004") == ("0003", "0004")
        assert _every_row(context) == before
        with pytest.raises(sa.exc.IntegrityError):  # foreign keys are on again
            _insert(context, "subscriber_topics", subscriber_id=99, topic="llms")
    finally:
        context.close()


def _every_row(context: Runtime) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table the database has at its revision."""
    present = set(sa.inspect(context.engine).get_table_names())
    with db.transaction(context.sessions) as session:
        return {
            table.name: sorted(tuple(map(str, row)) for row in session.execute(table.select()))
            for table in Base.metadata.sorted_tables
            if table.name in present
        }


def _a_paper(context: Runtime, id: int = 1) -> None:
    at = datetime(2026, 11, 23, tzinfo=UTC)
    _insert(context, "papers", id=id, external_id=f"p{id}", title="T", source="hf", listed_at=at)


def _a_paper_in_the_delivery(context: Runtime, subscriber_id: int = 1, paper_id: int = 1) -> None:
    _insert(
        context,
        "delivery_papers",
        delivery_id=1,
        paper_id=paper_id,
        subscriber_id=subscriber_id,
        position=1,
        score=1.0,
        reason="Matched your topic: Memory",
    )


def test_the_database_refuses_a_delivery_paper_for_another_reader_than_the_deliverys(
    any_context: Runtime,
) -> None:
    _an_edition(any_context)
    _a_subscriber(any_context)
    _a_subscriber(any_context, id=2)
    _a_delivery(any_context)  # for reader 1
    _a_paper(any_context)
    with pytest.raises(sa.exc.IntegrityError):
        _a_paper_in_the_delivery(any_context, subscriber_id=2)
    _a_paper_in_the_delivery(any_context, subscriber_id=1)
    assert len(_every_row(any_context)["delivery_papers"]) == 1


def test_deleting_a_reader_deletes_their_deliveries_and_the_papers_in_them(
    any_context: Runtime,
) -> None:
    _an_edition(any_context)
    _a_subscriber(any_context)
    _a_delivery(any_context)
    _a_paper(any_context)
    _a_paper_in_the_delivery(any_context)
    with db.transaction(any_context.sessions) as session:
        session.execute(sa.delete(Subscriber).where(Subscriber.id == 1))
    rows = _every_row(any_context)
    assert rows["deliveries"] == rows["delivery_papers"] == []
    assert len(rows["papers"]) == 1


def test_one_key_from_delivery_papers_to_their_delivery_and_reader_keeps_every_row(
    database_url: str,
) -> None:
    context = Runtime(make_settings(database_url))
    try:
        assert db.upgrade(context.engine, "0006") == (None, "0006")
        _an_edition(context)
        _a_subscriber(context)
        _a_subscriber(context, id=2)
        _a_delivery(context)
        _a_paper(context)
        _a_paper(context, id=2)
        _a_paper_in_the_delivery(context)
        before = _every_row(context)
        assert db.upgrade(context.engine, "0007") == ("0006", "0007")
        assert _every_row(context) == before
        with pytest.raises(sa.exc.IntegrityError):  # another reader's paper in it
            _a_paper_in_the_delivery(context, subscriber_id=2, paper_id=2)
        command.downgrade(db._alembic_config(context.engine), "0006")
        assert db.current_revision(context.engine) == "0006"
        assert _every_row(context) == before
    finally:
        context.close()
