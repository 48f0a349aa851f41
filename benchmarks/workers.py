"""Scale-out on PostgreSQL: one `newsletter worker` against two, draining one edition.

    .venv/bin/python benchmarks/workers.py --subscribers 20000

Two identical stores (fresh schemas on the PostgreSQL at 127.0.0.1:5432) get the same
papers, readers and planned edition, every delivery due now. One is drained by one
`newsletter worker` process, the other by two started together; both send to Postfix's
`smtp-sink` with the shipped config. It prints one JSON line: seconds and messages per
second for each, the speed-up, and duplicates (deliveries the relay accepted twice:
more than one successful attempt) — which must be 0.

Planning here matches by words (matching.semantic off): what is measured is the drain,
and the edition's messages are the same size either way.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select, update
from support import add_papers, database, free_port, newsletter, smtp_sink, write_config

from newsletter.config import load_settings
from newsletter.planning import planner
from newsletter.runtime import Runtime
from newsletter.store import db
from newsletter.store.models import Delivery, DeliveryAttempt

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def prepared(config: Path, subscribers: int, papers: int) -> None:
    """Papers, readers and this week's edition, every delivery due now."""
    now = datetime.now(UTC)
    newsletter(config, "init")
    add_papers(config, papers, now)
    readers = config.parent / "readers.csv"
    topics = [t.slug for t in load_settings(config).topics]
    lines = [f"reader{i:06d}@example.org,{topics[i % len(topics)]}" for i in range(subscribers)]
    readers.write_text("email,topics\n" + "\n".join(lines) + "\n")
    newsletter(config, "import-subscribers", str(readers))
    settings = load_settings(config).with_overrides(matching={"semantic": "off"})
    context = Runtime(settings)
    try:
        planner.plan_edition(context, now)
        with db.transaction(context.sessions) as session:
            session.execute(update(Delivery).values(next_attempt_at=now))
    finally:
        context.close()


def drain(config: Path, processes: int) -> float:
    """`processes` workers started together; seconds until the last one exits."""
    command = [str(Path(sys.executable).with_name("newsletter")), "--config", str(config)]
    start = time.perf_counter()
    workers = [
        subprocess.Popen([*command, "worker"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(processes)
    ]
    for worker in workers:
        _, errors = worker.communicate()
        if worker.returncode:
            raise SystemExit(f"a worker failed ({worker.returncode}): {errors.decode()}")
    return time.perf_counter() - start


def outcome(config: Path) -> tuple[int, int]:
    """(deliveries sent, deliveries with more than one successful attempt)."""
    context = Runtime(load_settings(config))
    try:
        with db.transaction(context.sessions) as session:
            sent = session.scalar(select(func.count()).where(Delivery.status == "sent"))
            repeated = (
                select(DeliveryAttempt.delivery_id)
                .where(DeliveryAttempt.ok.is_(True))
                .group_by(DeliveryAttempt.delivery_id)
                .having(func.count() > 1)
                .subquery()
            )
            duplicates = session.scalar(select(func.count()).select_from(repeated))
        return int(sent or 0), int(duplicates or 0)
    finally:
        context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--papers", type=int, default=300)
    parser.add_argument("--database", default=POSTGRES)
    args = parser.parse_args()
    if shutil.which("smtp-sink") is None:
        raise SystemExit("smtp-sink is missing: apt-get install postfix")
    figures: dict[str, object] = {"subscribers": args.subscribers}
    port = free_port()
    with smtp_sink(port):
        for processes in (1, 2):
            folder = Path(tempfile.mkdtemp(prefix=f"workers-bench-{processes}-"))
            with database(args.database, folder) as url:
                config = write_config(folder, url, port)
                prepared(config, args.subscribers, args.papers)
                seconds = drain(config, processes)
                sent, duplicates = outcome(config)
            shutil.rmtree(folder, ignore_errors=True)
            figures[f"workers_{processes}"] = {
                "seconds": round(seconds, 2),
                "sent": sent,
                "messages_per_second": round(sent / seconds, 1),
                "duplicates": duplicates,
            }
    one, two = figures["workers_1"], figures["workers_2"]
    assert isinstance(one, dict) and isinstance(two, dict)
    figures["speed_up_of_two"] = round(one["seconds"] / two["seconds"], 2)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
