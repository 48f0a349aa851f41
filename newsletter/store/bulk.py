"""Inserting many rows at once, without SQLAlchemy's per-row work.

Plans and imports write tens of thousands of rows. SQLite takes them through its
driver's own executemany; on PostgreSQL the driver would send an executemany as one
statement per row, so the rows go as one array per column, unnested by the server:
one statement per chunk. Rows are inserted in the order given (ids follow it).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from sqlalchemy import Table
from sqlalchemy import text as sql_text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

_CHUNK = 20_000  # rows per statement: bounded memory, few round trips


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
    statement = _statement(dialect, table, columns, skip_conflicts)
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start : start + _CHUNK]
        if dialect.name == "postgresql":
            arrays = [list(column) for column in zip(*chunk, strict=True)]
            session.execute(sql_text(statement), dict(zip(columns, arrays, strict=True)))
        else:
            session.connection().exec_driver_sql(statement, list(chunk))


@cache
def _statement(dialect: Dialect, table: Table, columns: tuple[str, ...], skip: bool) -> str:
    names = ", ".join(columns)
    head = f"INSERT INTO {table.name} ({names}) "
    tail = " ON CONFLICT DO NOTHING" if skip else ""
    if dialect.name != "postgresql":
        return f"{head}VALUES ({', '.join('?' for _ in columns)}){tail}"
    arrays = ", ".join(
        f"CAST(:{c} AS {table.c[c].type.compile(dialect=dialect)}[])" for c in columns
    )
    return f"{head}SELECT * FROM unnest({arrays}){tail}"
