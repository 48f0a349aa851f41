"""Inserting many rows at once, without SQLAlchemy's per-row work.

Plans and imports write tens or hundreds of thousands of rows. SQLite takes them
through its driver's own executemany. On PostgreSQL the driver would send an
executemany as one statement per row, and turns a Python list into an array element
by element; so the rows go as one array literal per column, built here with
str.join, and unnested by the server: one statement per chunk. Rows are inserted in
the order given (ids follow it).

Where rows rarely conflict (a plan's deliveries and papers, an import's readers),
PostgreSQL gets them by binary COPY inside a savepoint instead: no text to build or
parse, and no per-row conflict check, which costs the server as much as the row.
COPY cannot skip a conflict, so a taken row undoes it and the rows are inserted again
skipping conflicts: the unique keys decide in both cases, and the result is the same.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from functools import cache
from itertools import islice
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import (
    ARRAY,
    Boolean,
    ColumnElement,
    DateTime,
    Float,
    Integer,
    String,
    Table,
    Text,
    TypeDecorator,
    func,
    literal,
    select,
)
from sqlalchemy import cast as sql_cast
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


def insert_rows_once(
    session: Session,
    table: Table,
    columns: tuple[str, ...],
    rows: Callable[[], Iterable[tuple[object, ...]]],
) -> None:
    """Insert the rows `rows()` yields, leaving out any that would break a unique key,
    as insert_rows(skip_conflicts=True) does, in one statement on PostgreSQL.

    Rows are generated, not listed, so that a plan's never sit in memory at once.
    There they go by binary COPY, which has no ON CONFLICT: when a row does conflict
    (the caller read what exists before, so only a concurrent writer can have added
    it since), the COPY is rolled back to a savepoint and every row is inserted again,
    skipping conflicts. The conflict check per row that ON CONFLICT costs the server
    is thereby only paid in that rare case; the unique keys still decide.
    """
    if session.get_bind().dialect.name == "postgresql":
        from psycopg.errors import UniqueViolation  # the driver this engine has loaded

        try:
            with session.begin_nested():
                _copy(session, table, columns, rows())
            return
        except UniqueViolation:
            pass
    generated = iter(rows())
    while chunk := list(islice(generated, _CHUNK)):
        insert_rows(session, table, columns, chunk, skip_conflicts=True)


def _copy(
    session: Session, table: Table, columns: tuple[str, ...], rows: Iterable[tuple[object, ...]]
) -> None:
    """COPY the rows in binary: no text to build, escape or parse on either side."""
    types = [_copy_type(c, table) for c in columns]
    driver = session.connection().connection.driver_connection
    assert driver is not None  # a live connection: the session is in a transaction
    cursor = driver.cursor()
    with (
        cursor,
        cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy,
    ):
        copy.set_types(types)
        for row in rows:
            copy.write_row(row)


def _copy_type(column: str, table: Table) -> str:
    """The PostgreSQL type whose binary format COPY sends this column's values in
    (varchar's and text's are one), or "" for a type not listed here."""
    kind = table.c[column].type
    if isinstance(kind, TypeDecorator):
        kind = kind.impl_instance
    if isinstance(kind, DateTime):
        return "timestamptz" if kind.timezone else ""
    return _COPY_TYPES.get(type(kind), "")


_COPY_TYPES: dict[type[Any], str] = {
    Boolean: "bool",
    Integer: "int4",
    Float: "float8",
    String: "text",
    Text: "text",
}


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
        copied = _copy_new_rows(session, table, columns, rows, returning)
        if copied is not None:
            return copied
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


def _copy_new_rows(
    session: Session,
    table: Table,
    columns: tuple[str, ...],
    rows: Sequence[tuple[object, ...]],
    returning: tuple[str, ...],
) -> list[tuple[Any, ...]] | None:
    """insert_new_rows when none of the rows is taken, as is usual: ids drawn from the
    table's sequence in one query, the rows sent by COPY with them (in a savepoint),
    and what RETURNING would give built from the rows. None when a row is taken (the
    COPY is undone: the caller inserts skipping conflicts) or COPY cannot be used."""
    every = ("id", *columns)
    if (
        "id" in columns
        or table.autoincrement_column is None
        or table.autoincrement_column.name != "id"
        or any(c not in every for c in returning)
        or not all(_copy_type(c, table) for c in every)
    ):
        return None
    ids = sorted(
        session.scalars(
            sql_text(
                "SELECT nextval(pg_get_serial_sequence(:table, 'id'))"
                " FROM generate_series(1, :count)"
            ),
            {"table": table.name, "count": len(rows)},
        )
    )
    with_ids = [(i, *row) for i, row in zip(ids, rows, strict=True)]
    from psycopg.errors import UniqueViolation  # PostgreSQL only, like this path

    try:
        with session.begin_nested():
            _copy(session, table, every, with_ids)
    except UniqueViolation:
        return None
    where = [every.index(c) for c in returning]
    return [tuple(row[i] for i in where) for row in with_ids]


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


def where_in(
    session: Session, column: ColumnElement[Any], values: Sequence[Any]
) -> Iterator[ColumnElement[bool]]:
    """`column IN values` as conditions to run one query each: on PostgreSQL a single
    one over the values sent as one array literal (psycopg parses an IN list of
    500 placeholders in Python, which cost an import of 10,000 readers more than the
    server's work); elsewhere ID_CHUNK values at a time, under the parameter limit."""
    if not values:
        return
    if session.get_bind().dialect.name == "postgresql":
        # IN (SELECT unnest(…)), not = ANY(…): the planner joins it (by the column's
        # index, or hashed), where ANY would test every row against every value.
        array = sql_cast(literal(_array(values), Text), ARRAY(column.type))
        yield column.in_(select(func.unnest(array)).scalar_subquery())
        return
    for start in range(0, len(values), ID_CHUNK):
        yield column.in_(values[start : start + ID_CHUNK])


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


class DriverStatement:
    """A Core statement compiled once for a dialect and run by the driver itself.

    For the few statements a hot loop runs thousands of times with small parameter
    sets (sent marks): SQLAlchemy's work per execute (execution context, events,
    result set-up) costs more than the statement on SQLite. The rows still go through
    each parameter's bind processor (UTCDateTime, Boolean), as SQLAlchemy would send
    them, and in the driver's own parameter style.
    """

    def __init__(
        self, statement: Any, dialect: Dialect, column_keys: Sequence[str] | None = None
    ) -> None:
        compiled = statement.compile(
            dialect=dialect, column_keys=list(column_keys) if column_keys else None
        )
        self.sql = compiled.string
        self._defaults = compiled.params  # values bound in the statement itself
        self._order: tuple[str, ...] | None = (
            tuple(compiled.positiontup) if compiled.positional and compiled.positiontup else None
        )
        self._processors = {
            name: processor
            for bind, name in compiled.bind_names.items()
            if (processor := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        }

    def parameters(self, rows: Iterable[dict[str, Any]]) -> list[Any]:
        """Each row's values (merged over the statement's own), processed and laid out
        for the driver's executemany: tuples in order, or dicts."""
        laid: list[Any] = []
        for row in rows:
            values = {**self._defaults, **row}
            for name, processor in self._processors.items():
                values[name] = processor(values[name])
            laid.append(values if self._order is None else tuple(values[n] for n in self._order))
        return laid
