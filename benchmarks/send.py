"""Plan and send one edition to an SMTP server; print JSON with the time of each phase.

    smtp-sink -u nobody -c 127.0.0.1:2525 1000 &
    .venv/bin/python benchmarks/send.py --port 2525 --subscribers 20000 --connections 4 \
        [--workers 2] [--compare]

Compare with Postfix's smtp-source sending messages of the median size printed here
over the same number of connections (--compare runs it right after the pipeline and
prints the ratio, so both figures come from the same moment of a shared machine):

    smtp-source -s 4 -m 20000 -l SIZE -c 127.0.0.1:2525

--workers N sends from N processes that share the 4 connections (planning stays one
process); CPU seconds of this process and its children are printed too.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from newsletter import db, digest, sending
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


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (sending processes)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def smtp_source(args: argparse.Namespace, size: int, count: int) -> dict[str, float]:
    """Postfix's smtp-source: the same count, size and connections to the same sink."""
    command = ["smtp-source", "-s", str(args.connections), "-m", str(count), "-l", str(size)]
    start = time.perf_counter()
    subprocess.run(
        [*command, "-c", f"{args.host}:{args.port}"], check=True, stdout=subprocess.DEVNULL
    )
    seconds = time.perf_counter() - start
    return {
        "smtp_source_seconds": round(seconds, 3),
        "smtp_source_messages_per_second": round(count / seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--papers", type=int, default=2_000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--semantic", default="off", choices=["off", "auto"])
    parser.add_argument("--workers", type=int, default=1, help="sending processes")
    parser.add_argument("--compare", action="store_true", help="also time smtp-source")
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
    sizes = sending.send_now(context, dry_run=True, email="reader000001@example.org").dry_run_bytes
    start = time.perf_counter()
    cpu = _cpu_seconds()
    result = sending.send_now(
        context,
        clock=lambda: NOW + timedelta(seconds=time.perf_counter()),
        workers=args.workers,
    )
    phases["send"] = time.perf_counter() - start
    send_cpu = _cpu_seconds() - cpu
    sent = result.counters.sent
    with db.transaction(context.sessions) as session:
        from sqlalchemy import text

        row = session.execute(text("select count(*) from deliveries where status='sent'")).one()
    total = phases["plan"] + phases["send"]
    median = int(statistics.median(sizes)) if sizes else 0
    source = smtp_source(args, median, sent) if args.compare else None
    print(
        json.dumps(
            {
                "subscribers": args.subscribers,
                "papers": args.papers,
                "connections": args.connections,
                "workers": args.workers,
                "planned": plan.planned,
                "sent": sent,
                "sent_in_db": row[0],
                "failed": result.counters.failed,
                "phases_seconds": {k: round(v, 3) for k, v in phases.items()},
                "send_messages_per_second": round(sent / phases["send"], 1),
                "pipeline_messages_per_second": round(sent / total, 1),
                "send_cpu_seconds": round(send_cpu, 2),
                "median_message_bytes": median,
                **(source or {}),
                **(
                    {
                        "pipeline_ratio_to_smtp_source": round(
                            sent / total / source["smtp_source_messages_per_second"], 3
                        )
                    }
                    if source
                    else {}
                ),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
