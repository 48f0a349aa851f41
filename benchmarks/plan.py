"""Planning an edition for many readers, once the embeddings exist: `planner.plan_edition`.

    .venv/bin/python benchmarks/plan.py --subscribers 50000
    .venv/bin/python benchmarks/plan.py --subscribers 50000 \
        --database postgresql+psycopg://postgres@127.0.0.1:5432/test

It builds a store (a new SQLite file, or a new schema on PostgreSQL) with `--papers`
papers listed this week and `--subscribers` active readers: one or two of the shipped
topics each and, for two in three, one or two typed interests drawn from a few hundred
distinct texts. Then it stores the embeddings planning needs, so the timed run embeds
nothing:

- papers get synthetic vectors (seeded, L2-normalized, the model's width, stored under
  the configured model's name): the real model takes minutes for 2,000 papers on a
  small CPU, and this benchmark times planning, not matching quality (that is
  tests/test_matching_quality.py and benchmarks/match.py);
- the typed interests and topics are embedded by the real model when the semantic
  extra is installed (`planner.embed_window`, in the setup process).

The timed run is a fresh process (so its peak memory is planning's own): it plans the
current edition with `planner.plan_edition` and prints one JSON line with the phases
(embed check, load readers, papers and history, rank, merge, insert), the total and
the peak resident memory. `model_loaded` says whether the timed run imported the model
(it must not: everything was embedded).
"""

from __future__ import annotations

import argparse
import functools
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import sqlalchemy as sa
from support import INTERESTS, add_papers, database, free_port, newsletter, write_config

from newsletter.config import load_settings
from newsletter.matching.embedder import to_bytes
from newsletter.planning import planner, relevance, selection
from newsletter.runtime import Runtime
from newsletter.store import db
from newsletter.store import plans as plans_mod
from newsletter.store.models import Paper, Subscriber, SubscriberInterest, SubscriberTopic
from newsletter.store.papers import set_embeddings

DIMENSION = 384  # all-MiniLM-L6-v2
ANGLES = [
    "",
    "for robotics",
    "in medicine",
    "benchmarks",
    "at scale",
    "theory",
    "for low-resource languages",
    "on edge devices",
    "with few labels",
    "surveys",
    "for science",
    "under distribution shift",
    "efficiency",
    "interpretability",
    "for education",
]
ONE_WORD = ["healthcare", "robotics", "memory", "vision", "agents", "retrieval", "safety"]
F = TypeVar("F", bound=Callable[..., Any])


def interest_texts() -> list[str]:
    """A few hundred distinct typed interests: subjects, each from several angles."""
    return [f"{s} {a}".strip() for s in INTERESTS for a in ANGLES] + ONE_WORD


def add_readers(url: str, count: int, topics: list[str], now: datetime) -> None:
    """Active readers written in bulk (the import command is timed on its own)."""
    texts = interest_texts()
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        for start in range(0, count, 5_000):
            ids = range(start + 1, min(count, start + 5_000) + 1)
            connection.execute(
                sa.insert(Subscriber.__table__),
                [
                    {
                        "id": i,
                        "email": f"reader{i:06d}@example.org",
                        "status": "active",
                        "paused": False,
                        "hard_bounces": 0,
                        "created_at": now,
                        "confirmed_at": now,
                    }
                    for i in ids
                ],
            )
            connection.execute(
                sa.insert(SubscriberTopic.__table__),
                [
                    {"subscriber_id": i, "topic": t}
                    for i in ids
                    for t in sorted({topics[i % len(topics)], topics[(i // 7) % len(topics)]})
                ],
            )
            typed = [
                {"subscriber_id": i, "text": t}
                for i in ids
                if i % 3
                for t in dict.fromkeys(
                    [texts[(i * 31) % len(texts)]]
                    + ([texts[(i * 17 + 5) % len(texts)]] if i % 5 == 1 else [])
                )
            ]
            connection.execute(sa.insert(SubscriberInterest.__table__), typed)
        if engine.dialect.name == "postgresql":
            connection.execute(
                sa.text("SELECT setval('subscribers_id_seq', (SELECT max(id) FROM subscribers))")
            )
    engine.dispose()


def add_paper_vectors(config: Path) -> None:
    """Seeded random unit vectors for every paper, under the configured model's name."""
    context = Runtime(load_settings(config))
    rng = np.random.default_rng(12)
    try:
        with db.transaction(context.sessions) as session:
            ids = list(session.scalars(sa.select(Paper.id)))
            vectors = rng.standard_normal((len(ids), DIMENSION)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            blobs = {i: to_bytes(v) for i, v in zip(ids, vectors, strict=True)}
            set_embeddings(session, context.settings.matching.model, blobs)
        planner.embed_window(context)  # the interests: the real model when installed
        with db.transaction(context.sessions) as session:
            # Ranking also embeds the topics' names (one-word interests are matched
            # against them) and keeps those vectors: rank once, as a first plan would.
            papers = session.scalars(sa.select(Paper)).all()
            topics = session.scalars(sa.select(SubscriberTopic.topic).distinct())
            texts = session.scalars(sa.select(SubscriberInterest.text).distinct())
            interests = relevance.interests_for(context.settings, topics, texts)
            relevance.rank_papers(session, context.settings, interests, papers)
    finally:
        context.close()


# --- the timed run (its own process) ---------------------------------------------------


def timed(phases: dict[str, float], name: str, function: F) -> F:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            phases[name] += time.perf_counter() - start

    return wrapper  # type: ignore[return-value]


def peak_rss_kib() -> int:
    """This process's own peak resident memory. Not getrusage's ru_maxrss: Linux
    carries that over exec from the parent (here the setup, which loaded the model)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def time_planning(config: Path) -> dict[str, object]:
    phases: dict[str, float] = defaultdict(float)
    planner.embed_window = timed(phases, "embed_check", planner.embed_window)  # type: ignore[method-assign]
    # The planner calls choose_for by the name it imported.
    planner.choose_for = timed(phases, "choose", planner.choose_for)  # type: ignore[attr-defined]
    selection.rank_papers = timed(phases, "rank", selection.rank_papers)  # type: ignore[method-assign]
    plans_mod.subscribers_to_plan = timed(phases, "load_readers", plans_mod.subscribers_to_plan)  # type: ignore[method-assign]
    plans_mod.delivered_papers = timed(phases, "history", plans_mod.delivered_papers)  # type: ignore[method-assign]
    plans_mod.insert_deliveries = timed(phases, "insert", plans_mod.insert_deliveries)  # type: ignore[method-assign]
    context = Runtime(load_settings(config))
    cpu = time.process_time()
    start = time.perf_counter()
    result = planner.plan_edition(context)
    total = time.perf_counter() - start
    cpu = time.process_time() - cpu
    context.close()
    merge = phases.pop("choose") - phases["rank"]
    figures: dict[str, object] = {f"{k}_seconds": round(v, 3) for k, v in phases.items()}
    figures["merge_seconds"] = round(merge, 3)
    figures["other_seconds"] = round(total - sum(phases.values()) - merge, 3)
    figures["plan_seconds"] = round(total, 3)
    figures["plan_cpu_seconds"] = round(cpu, 3)
    figures["planned"] = result.planned
    figures["digests"] = result.digests
    figures["peak_rss_mib"] = round(peak_rss_kib() / 1024)
    figures["model_loaded"] = "sentence_transformers" in sys.modules
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=50_000)
    parser.add_argument("--papers", type=int, default=2_000)
    parser.add_argument("--database", help="a PostgreSQL URL (default: a new SQLite file)")
    parser.add_argument("--keep", action="store_true", help="keep the SQLite store (and say where)")
    parser.add_argument("--time-only", type=Path, metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.time_only:
        print(json.dumps(time_planning(args.time_only)))
        return

    folder = Path(tempfile.mkdtemp(prefix="plan-bench-"))
    figures: dict[str, object] = {"subscribers": args.subscribers, "papers": args.papers}
    with database(args.database, folder) as url:
        config = write_config(folder, url, free_port())
        settings = load_settings(config)
        figures["backend"] = url.split(":", 1)[0]
        figures["semantic"] = settings.matching.semantic
        newsletter(config, "init")
        now = datetime.now(UTC)
        add_papers(config, args.papers, now)
        add_readers(url, args.subscribers, [t.slug for t in settings.topics], now)
        add_paper_vectors(config)
        run = subprocess.run(
            [sys.executable, __file__, "--time-only", str(config)],
            check=True,
            capture_output=True,
            text=True,
        )
        figures.update(json.loads(run.stdout.splitlines()[-1]))
        figures["distinct_interests"] = len(interest_texts())
    if args.keep:
        figures["config"] = str(config)
    else:
        shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
