"""Plan and send one edition to an SMTP server; print JSON with the time of each phase.

    smtp-sink -c 127.0.0.1:2525 1000 &
    .venv/bin/python benchmarks/send.py --port 2525 --subscribers 20000 --connections 4

Compare with Postfix's smtp-source sending messages of the median size printed here
over the same number of connections:

    smtp-source -s 4 -m 20000 -l SIZE -c 127.0.0.1:2525
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from newsletter import db, digest, outbox
from newsletter.config import parse_settings
from newsletter.context import Context
from newsletter.models import Subscriber, SubscriberTopic
from newsletter.records import PaperRecord
from newsletter.store.papers import upsert_papers

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
WORDS = [
    "language",
    "model",
    "image",
    "segmentation",
    "memory",
    "retrieval",
    "diffusion",
    "alignment",
]
TOPICS = ["llms", "computer-vision", "memory", "rag", "diffusion", "safety"]


def build(context: Context, subscribers: int, papers: int) -> None:
    records = [
        PaperRecord(
            f"arxiv:2611.{i:05d}",
            f"A study of {WORDS[i % len(WORDS)]} and {WORDS[(i * 7) % len(WORDS)]} number {i}",
            "json",
            abstract=" ".join(WORDS[(i + j) % len(WORDS)] for j in range(120)) + ".",
            authors=("Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra"),
            upvotes=i % 300,
            comments=i % 17,
            url=f"https://papers.example.org/{i}",
            pdf_url=f"https://arxiv.org/pdf/2611.{i:05d}",
            listed_at=NOW - timedelta(days=6, minutes=i),
        )
        for i in range(papers)
    ]
    with db.transaction(context.sessions) as session:
        upsert_papers(session, records)
        for i in range(subscribers):
            reader = Subscriber(email=f"reader{i:06d}@example.org", status="active")
            picks = {TOPICS[i % len(TOPICS)], TOPICS[(i // len(TOPICS)) % len(TOPICS)]}
            reader.topics = [SubscriberTopic(topic=t) for t in sorted(picks)]
            session.add(reader)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--papers", type=int, default=2_000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--semantic", default="off", choices=["off", "auto"])
    parser.add_argument("--database", help="database URL (default: a new SQLite file)")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="send-bench-")
    url = args.database or f"sqlite:///{folder}/bench.db"
    config = Path(__file__).resolve().parent.parent / "config.yaml"
    import yaml

    raw = yaml.safe_load(config.read_text())
    raw.update(
        database={"url": url},
        secret_key="benchmark-secret-key-0123456789",
        smtp={"host": args.host, "port": args.port, "connections": args.connections},
        delivery={"batch_size": 500},
        matching={**raw.get("matching", {}), "semantic": args.semantic},
    )
    context = Context(parse_settings(raw))
    db.upgrade(context.engine)
    phases: dict[str, float] = {}
    start = time.perf_counter()
    build(context, args.subscribers, args.papers)
    phases["build_database"] = time.perf_counter() - start

    start = time.perf_counter()
    plan = digest.plan_edition(context, NOW)
    phases["plan"] = time.perf_counter() - start

    # One reader's real message, composed and rolled back, gives the size to compare with.
    sizes = outbox.send_now(context, dry_run=True, email="reader000001@example.org").dry_run_bytes
    start = time.perf_counter()
    result = outbox.send_now(context, clock=lambda: NOW + timedelta(seconds=time.perf_counter()))
    phases["send"] = time.perf_counter() - start
    sent = result.counters.sent
    with db.transaction(context.sessions) as session:
        from sqlalchemy import text

        row = session.execute(text("select count(*) from deliveries where status='sent'")).one()
    total = phases["plan"] + phases["send"]
    print(
        json.dumps(
            {
                "subscribers": args.subscribers,
                "papers": args.papers,
                "connections": args.connections,
                "planned": plan.planned,
                "sent": sent,
                "sent_in_db": row[0],
                "failed": result.counters.failed,
                "phases_seconds": {k: round(v, 3) for k, v in phases.items()},
                "send_messages_per_second": round(sent / phases["send"], 1),
                "pipeline_messages_per_second": round(sent / total, 1),
                "median_message_bytes": int(statistics.median(sizes)) if sizes else None,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
