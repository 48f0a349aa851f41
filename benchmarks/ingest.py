"""Time ingesting N daily-paper records (parse + one transaction) on SQLite and PostgreSQL.

Usage: .venv/bin/python benchmarks/ingest.py [N]   (default 5000; PostgreSQL at 127.0.0.1:5432)
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

from newsletter.config import parse_settings
from newsletter.ingest import ingest
from newsletter.runtime import Runtime
from newsletter.sources.hf import HfSource
from newsletter.store import db

N = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def records(n: int, upvotes: int) -> list[dict[str, object]]:
    return [
        {
            "paper": {
                "id": f"2411.{i:05d}",
                "title": f"Paper number {i} on large language models",
                "summary": "An abstract of a few sentences. " * 30,
                "upvotes": upvotes + i % 50,
                "authors": [{"name": f"Author {j}"} for j in range(6)],
                "publishedAt": "2026-11-20T10:00:00.000Z",
                "submittedOnDailyAt": "2026-11-24T10:00:00.000Z",
                "ai_keywords": ["llm", "memory", "retrieval"],
            },
            "numComments": i % 7,
        }
        for i in range(n)
    ]


def run(url: str, label: str, folder: Path) -> None:
    first = folder / "first.json"
    first.write_text(json.dumps(records(N, 1)))
    bumped = folder / "bumped.json"
    bumped.write_text(json.dumps(records(N, 2)))
    context = Runtime(parse_settings({"database": {"url": url}}))
    db.upgrade(context.engine)
    for name, path in (("new", first), ("unchanged", first), ("upvotes changed", bumped)):
        start = time.perf_counter()
        report = ingest(context, [str(path)])
        took = time.perf_counter() - start
        counts = f"{report.new} new / {report.updated} updated / {report.unchanged} unchanged"
        print(f"{label:10} {name:16} {N} records in {took:.2f} s ({N / took:,.0f}/s)  [{counts}]")
    context.close()


def main() -> None:
    data = json.dumps(records(N, 1)).encode()
    start = time.perf_counter()
    HfSource().parse(data, "bench")
    print(f"parse only {len(data) / 1e6:.1f} MB of hf JSON: {time.perf_counter() - start:.2f} s")
    with tempfile.TemporaryDirectory() as tmp:
        run(f"sqlite:///{tmp}/bench.db", "sqlite", Path(tmp))
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(PG)
        with admin.begin() as c:
            c.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        try:
            run(f"{PG}?options=-csearch_path%3D{schema}", "postgresql", Path(tmp))
        finally:
            with admin.begin() as c:
                c.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))


if __name__ == "__main__":
    main()
