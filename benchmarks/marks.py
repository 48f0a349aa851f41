"""Recording sent marks: the group commit `send-now` makes after each accepted message.

    .venv/bin/python benchmarks/marks.py [--marks 4000] \
        [--database postgresql+psycopg://postgres@127.0.0.1:5432/test]

It builds a store with one edition and `--marks` deliveries, then records them sent in
groups of 1, 2 and 4 (what four SMTP connections give a group commit) two ways in the
same run: `deliveries.SentRecorder` as `send-now` runs it (the driver's executemany),
and the reference, the same statements through SQLAlchemy's Connection (executemany,
one commit per group). It prints wall and CPU microseconds per commit.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, insert
from support import database

from newsletter.store import db
from newsletter.store.bulk import table_of
from newsletter.store.claims import ClaimedDelivery
from newsletter.store.deliveries import SentMark, SentRecorder, sent_rows, sent_statements
from newsletter.store.models import Delivery, Edition, Subscriber

NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


def build(engine: Engine, count: int) -> list[ClaimedDelivery]:
    db.upgrade(engine)
    with engine.begin() as connection:
        edition = connection.execute(
            insert(table_of(Edition)).returning(table_of(Edition).c.id),
            {"key": "2026-W50", "window_start": NOW - timedelta(days=7), "window_end": NOW}
            | {"scheduled_for": NOW, "status": "sending", "created_at": NOW},
        ).scalar_one()
        people = [
            {"email": f"reader{n}@example.org", "status": "active", "created_at": NOW}
            | {"paused": False, "hard_bounces": 0}
            for n in range(count)
        ]
        connection.execute(insert(table_of(Subscriber)), people)
        connection.execute(
            insert(table_of(Delivery)),
            [
                {"edition_id": edition, "subscriber_id": n + 1, "kind": "digest"}
                | {"status": "sending", "attempts": 0, "next_attempt_at": NOW, "created_at": NOW}
                for n in range(count)
            ],
        )
    return [ClaimedDelivery(n + 1, edition, n + 1, "", "digest", 0, 0) for n in range(count)]


def through_sqlalchemy(engine: Engine) -> Callable[[Sequence[SentMark]], None]:
    """The reference: the recorder's own statements and rows executed by SQLAlchemy's
    Connection with many parameter sets, one commit per group."""
    connection = engine.connect()

    def record(marks: Sequence[SentMark]) -> None:
        for statement, rows in zip(sent_statements(), sent_rows(marks), strict=True):
            if rows:
                connection.execute(statement, rows)
        connection.commit()

    return record


def timed(record: Callable[[Sequence[SentMark]], None], marks: list[SentMark], group: int) -> str:
    wall, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(marks), group):
        record(marks[start : start + group])
    commits = -(-len(marks) // group)
    wall_us = (time.perf_counter() - wall) / commits * 1e6
    cpu_us = (time.process_time() - cpu) / commits * 1e6
    return f"{wall_us:6.0f} µs ({cpu_us:4.0f} µs CPU)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--marks", type=int, default=4_000)
    parser.add_argument("--database", help="a PostgreSQL URL (default: a new SQLite file)")
    args = parser.parse_args()
    with database(args.database, Path(tempfile.mkdtemp(prefix="marks-bench-"))) as url:
        engine = db.make_engine(url)
        claimed = build(engine, args.marks)
        marks = [SentMark(d, f"<{d.id}@example.org>", NOW) for d in claimed]
        recorder = SentRecorder(engine)
        reference = through_sqlalchemy(engine)
        print(f"{engine.dialect.name}, {args.marks} marks, per commit")
        for group in (1, 2, 4):
            driver = timed(recorder.record, marks, group)
            core = timed(reference, marks, group)
            print(f"group of {group}: SentRecorder {driver}   SQLAlchemy Connection {core}")
        recorder.close()
        engine.dispose()


if __name__ == "__main__":
    main()
