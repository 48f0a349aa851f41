"""The schema: created and upgraded by `init`, required by every other command."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from newsletter.errors import SchemaMissing
from newsletter.runtime import Context
from newsletter.store import db
from newsletter.store.models import Paper
from tests.conftest import make_settings


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


def test_times_come_back_aware_in_utc(any_context: Context) -> None:
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


def test_a_failed_transaction_leaves_nothing_behind(any_context: Context) -> None:
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
    first, second = Context(settings), Context(settings)
    db.upgrade(first.engine)
    assert len(first.secret_key) >= 32
    assert second.secret_key == first.secret_key
