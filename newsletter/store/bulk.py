"""Inserting many rows at once, without SQLAlchemy's per-row work.

Plans and imports write tens or hundreds of thousands of rows. SQLite takes them
through its driver's own executemany. On PostgreSQL the driver would send an
executemany as one statement per row, and turns a Python list into an array element
by element; so the rows go as one array literal per column, built here with
str.join, and unnested by the server: one statement per chunk. Rows are inserted in
the order given (ids follow it).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table
from sqlalchemy import text as sql_text
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql

ID_CHUNK = 500  # ids per IN (...) list: under every backend's bound-parameter limit
_CHUNK = 20_000  # rows per statement: bounded memory, few round trips
_RETURNING_CHUNK = 500  # SQLite: rows per executemany that returns ids


def insert_rows(
    session: Session,
    table: Table,
    columns: tuple[str, ...],
    rows: Sequence[tuple[object, ...]],
    *,
    skip_conflicts: bool = False,
) -> None:
    """Insert `rows` (tuples in the order of `columns`); with `skip_conflicts`, a row
    that would break a unique key is left out (ON CONFLICT DO NOTHING)."""
    if not rows:
        return
    dialect = session.get_bind().dialect
    tail = "ON CONFLICT DO NOTHING" if skip_conflicts else ""
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start : start + _CHUNK]
        if dialect.name == "postgresql":
            statement = _unnest(dialect, table, columns, tail)
            session.execute(sql_text(statement), _arrays(columns, chunk))
        else:
            session.connection().exec_driver_sql(_values(table, columns, tail), list(chunk))


def insert_new_rows(
    session: Session,
    table: Table,
    columns: tuple[str, ...],
    rows: Sequence[tuple[object, ...]],
    *,
    unique: tuple[str, ...],
    returning: tuple[str, ...],
) -> list[tuple[Any, ...]]:
    """Insert the rows whose `unique` columns are not taken yet; returns the
    `returning` columns of those this call created (a concurrent writer's are not)."""
    if not rows:
        return []
    dialect = session.get_bind().dialect
    created: list[tuple[Any, ...]] = []
    if dialect.name == "postgresql":
        tail = f"ON CONFLICT ({', '.join(unique)}) DO NOTHING RETURNING {', '.join(returning)}"
        statement = sql_text(_unnest(dialect, table, columns, tail))
        for start in range(0, len(rows), _CHUNK):
            found = session.execute(statement, _arrays(columns, rows[start : start + _CHUNK]))
            created.extend(tuple(row) for row in found)
        return created
    # SQLite's executemany returns no rows: SQLAlchemy's multi-row VALUES does.
    insert = (
        sqlite.insert(table)
        .on_conflict_do_nothing(index_elements=list(unique))
        .returning(*(table.c[c] for c in returning))
    )
    for start in range(0, len(rows), _RETURNING_CHUNK):
        chunk = [
            dict(zip(columns, row, strict=True)) for row in rows[start : start + _RETURNING_CHUNK]
        ]
        created.extend(tuple(row) for row in session.execute(insert, chunk))
    return created


@cache
def _values(table: Table, columns: tuple[str, ...], tail: str) -> str:
    marks = ", ".join("?" for _ in columns)
    return f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({marks}) {tail}"


@cache
def _unnest(dialect: Dialect, table: Table, columns: tuple[str, ...], tail: str) -> str:
    arrays = ", ".join(
        f"CAST(:{c} AS {table.c[c].type.compile(dialect=dialect)}[])" for c in columns
    )
    return f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM unnest({arrays}) {tail}"


def _arrays(columns: tuple[str, ...], rows: Sequence[tuple[object, ...]]) -> dict[str, str]:
    values = zip(*rows, strict=True)
    return {name: _array(column) for name, column in zip(columns, values, strict=True)}


def _array(values: Sequence[object]) -> str:
    """A PostgreSQL array literal: '{1,2}', '{"a \\"b\\"",NULL}'."""
    kinds = {type(v) for v in values}
    if kinds == {int} or kinds == {float}:
        return "{" + ",".join(map(repr, values)) + "}"
    return "{" + ",".join(map(_element, values)) + "}"


def _element(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "t" if value else "f"
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def table_of(model: Any) -> Table:
    """A mapped class's table, for plain Core statements (no ORM bookkeeping)."""
    return cast(Table, model.__table__)


def insert_or_ignore(session: Session, table: Any) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that can say ON CONFLICT DO NOTHING on this backend."""
    if session.get_bind().dialect.name == "postgresql":
        # Imported on PostgreSQL only (its engine has loaded it): a SQLite process,
        # such as every short command of the embedded default, starts faster without.
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    return sqlite.insert(table)
