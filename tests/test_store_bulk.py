"""Lookups of many values at once: one array on PostgreSQL, chunks elsewhere."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from newsletter.runtime import Runtime
from newsletter.store import db
from newsletter.store.bulk import table_of, where_in
from newsletter.store.models import Subscriber
from newsletter.store.plans import interests_of
from newsletter.store.subscribers import add_active_subscribers, ids_by_email, replace_choices

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
# What an array literal must carry through: quotes, backslashes, commas, braces, and
# text that spells NULL.
AWKWARD = [
    'a"b@example.org',
    "back\\slash@example.org",
    "c,d@example.org",
    "{e}@example.org",
    "NULL@example.org",
    "null",
]


def test_it_finds_every_reader_of_a_long_list_of_awkward_addresses(any_context: Runtime) -> None:
    plain = [f"reader{n}@example.org" for n in range(1_200)]  # more than one chunk
    readers = {email: (["nlp"], ["graph neural networks"]) for email in plain + AWKWARD}
    with db.transaction(any_context.sessions) as session:
        created = add_active_subscribers(session, readers, NOW)
    with db.transaction(any_context.sessions) as session:
        found = ids_by_email(session, [*AWKWARD, *plain, "nobody@example.org"])
        rows = [
            row
            for condition in where_in(session, table_of(Subscriber).c.id, list(created.values()))
            for row in session.execute(select(table_of(Subscriber).c.email).where(condition))
        ]
    assert found == created
    assert sorted(r.email for r in rows) == sorted(created)


def test_replacing_choices_of_many_readers_reads_each_readers_own(any_context: Runtime) -> None:
    emails = [f"reader{n}@example.org" for n in range(1_100)]
    readers = {email: (["nlp"], ["first", "second"]) for email in emails}
    with db.transaction(any_context.sessions) as session:
        ids = add_active_subscribers(session, readers, NOW)
        replace_choices(session, {ids[e]: (["vision"], ["second", "third"]) for e in emails})
    with db.transaction(any_context.sessions) as session:
        chosen = interests_of(session, sorted(ids.values()))
    assert all(chosen[i] == (["vision"], ["second", "third"]) for i in ids.values())


def test_no_values_make_no_query(any_context: Runtime) -> None:
    with db.transaction(any_context.sessions) as session:
        assert list(where_in(session, table_of(Subscriber).c.id, [])) == []
