"""Benchmark: every subscriber's ranked picks for one weekly edition.

100,000 subscribers whose interests overlap as they do in practice (a few hundred
config topics, chosen Zipf-like, plus tens of thousands of distinct free-text
interests, the popular ones shared by many) against 2,000 papers made from the
bundled sample's sentences. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/match.py                 # with the model, if installed
    .venv/bin/python benchmarks/match.py --no-semantic   # words only

Reported separately: the one-off cost of embedding the papers (stored, never redone)
and embedding the unique interests (once per run, cached in the process).

Timed as planning runs them once the embeddings exist: `matching.rank` (what
`relevance.rank_papers` calls) once per unique interest, then every subscriber's
digest merged from their interests' ranked lists by `selection.merge_ranked` (what
`selection.choose_for` calls). benchmarks/plan.py times the same path end to end over
a store, with fewer distinct interests.
"""

from __future__ import annotations

import argparse
import random
import resource
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from newsletter.matching import Candidate, Interest, Match, MatchParams, rank, semantic_text
from newsletter.matching.embedder import EmbedderUnavailable, load_embedder, paper_text, to_bytes
from newsletter.matching.evaluate import load_papers
from newsletter.matching.text import query_terms, words
from newsletter.planning.selection import merge_ranked
from newsletter.store.plans import PlannedPaper

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 3, 11, tzinfo=UTC)


def make_papers(count: int, rng: random.Random) -> list[Candidate]:
    sample = load_papers(ROOT / "newsletter" / "data" / "sample-papers.jsonl")
    sentences = [s.strip() + "." for p in sample for s in p.abstract.split(". ") if s.strip()]
    titles = [p.title for p in sample]
    papers = []
    for pid in range(count):
        base = rng.choice(titles).split()
        rng.shuffle(base)
        title = " ".join(base[: rng.randint(5, 10)])
        abstract = " ".join(rng.sample(sentences, rng.randint(6, 11)))
        upvotes = int(rng.paretovariate(1.2)) - 1 if rng.random() < 0.7 else None
        comments = int(rng.paretovariate(1.5)) - 1 if upvotes is not None else None
        listed = NOW - timedelta(days=rng.uniform(0, 7))
        papers.append(Candidate(pid, title, abstract, (), (), upvotes, comments, listed))
    return papers


def vocabulary(papers: list[Candidate]) -> list[str]:
    found: dict[str, None] = {}
    for paper in papers[:300]:
        for word in words(paper.abstract):
            if word and len(word) > 3 and not word.isdigit():
                found[word] = None
    return list(found)


def make_topics(count: int, vocab: list[str], rng: random.Random) -> list[Interest]:
    topics = []
    for n in range(count):
        name = " ".join(rng.sample(vocab, 2))
        keywords = tuple(" ".join(rng.sample(vocab, rng.randint(1, 2))) for _ in range(5))
        topics.append(Interest(f"topic:t{n}", name, f"{name}. Papers about {name}.", keywords))
    return topics


def make_texts(count: int, vocab: list[str], rng: random.Random) -> list[Interest]:
    texts: dict[str, None] = {}
    while len(texts) < count:
        phrase = " ".join(rng.sample(vocab, rng.randint(1, 4)))
        if rng.random() < 0.3:
            phrase = f"{phrase} for {rng.choice(vocab)}"
        texts[phrase] = None
    return [Interest(f"text:{t}", t, t) for t in texts]


def zipf_index(size: int, rng: random.Random, s: float = 1.1) -> int:
    return min(int(rng.paretovariate(s)) - 1, size - 1)


def make_subscribers(
    count: int, topics: list[Interest], texts: list[Interest], rng: random.Random
) -> list[list[str]]:
    order = list(range(len(texts)))
    rng.shuffle(order)
    subscribers = []
    for _ in range(count):
        keys = {topics[zipf_index(len(topics), rng, 0.8)].key for _ in range(rng.randint(1, 3))}
        if rng.random() < 0.6:
            for _ in range(rng.randint(1, 2)):
                # Half pick a popular interest, half something nearly their own.
                pick = (
                    zipf_index(len(texts), rng, 0.7)
                    if rng.random() < 0.5
                    else rng.randrange(len(texts))
                )
                keys.add(texts[order[pick]].key)
        subscribers.append(sorted(keys))
    return subscribers


Reader = tuple[int, list[Interest], tuple[str, ...]]


def reader_choices(subscribers: list[list[str]], interests: list[Interest]) -> list[Reader]:
    """(id, interests, keys) per subscriber: what planning reads of each reader."""
    by_key = {i.key: i for i in interests}
    return [(n, [by_key[k] for k in keys], tuple(keys)) for n, keys in enumerate(subscribers)]


def merge_all(
    ranked: dict[str, list[Match]], readers: list[Reader], limit: int
) -> dict[int, tuple[PlannedPaper, ...]]:
    """Every subscriber's digest, as planning merges it (no history: a first edition)."""
    return merge_ranked(ranked, readers, {}, limit, general=lambda seen: ())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--papers", type=int, default=2_000)
    parser.add_argument("--topics", type=int, default=300)
    parser.add_argument(
        "--texts", type=int, default=40_000, help="free-text interests to draw from"
    )
    parser.add_argument("--max-papers", type=int, default=10)
    parser.add_argument("--no-semantic", action="store_true")
    args = parser.parse_args()
    rng = random.Random(7)

    papers = make_papers(args.papers, rng)
    vocab = vocabulary(papers)
    topics = make_topics(args.topics, vocab, rng)
    texts = make_texts(args.texts, vocab, rng)
    subscribers = make_subscribers(args.subscribers, topics, texts, rng)
    used = {key for keys in subscribers for key in keys}
    interests = [i for i in (*topics, *texts) if i.key in used]
    print(f"{len(subscribers):,} subscribers, {len(papers):,} papers")
    print(
        f"unique interests: {len(interests):,} "
        f"({sum(1 for i in interests if i.key.startswith('topic:'))} topics, "
        f"{sum(1 for i in interests if i.key.startswith('text:')):,} free text)"
    )

    vectors = None
    if not args.no_semantic:
        try:
            started = time.perf_counter()
            model = load_embedder("sentence-transformers/all-MiniLM-L6-v2")
            print(f"model load: {time.perf_counter() - started:.1f} s")
            started = time.perf_counter()
            paper_vectors = model.embed([paper_text(p.title, p.abstract) for p in papers])
            print(
                f"one-off: embedding {len(papers):,} papers: {time.perf_counter() - started:.1f} s "
                "(stored in papers.embedding, never recomputed)"
            )
            papers = [
                Candidate(
                    p.paper_id,
                    p.title,
                    p.abstract,
                    p.categories,
                    p.keywords,
                    p.upvotes,
                    p.comments,
                    p.listed_at,
                    to_bytes(v),
                )
                for p, v in zip(papers, paper_vectors, strict=True)
            ]
            started = time.perf_counter()
            vectors = model.embed([semantic_text(i) for i in interests])
            print(
                f"per run: embedding {len(interests):,} unique interests: "
                f"{time.perf_counter() - started:.1f} s (cached in the process)"
            )
        except EmbedderUnavailable as exc:
            print(f"semantic extra absent ({exc}): words only")

    readers = reader_choices(subscribers, interests)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    ranked = rank(interests, papers, interest_vectors=vectors, params=MatchParams())
    ranked_at = time.perf_counter()
    chosen = merge_all(ranked, readers, args.max_papers)
    done = time.perf_counter()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    matches = sum(len(v) for v in ranked.values())
    empty = sum(1 for c in chosen.values() if not c)
    print(
        f"rank {len(interests):,} unique interests: {ranked_at - started:.2f} s "
        f"({matches:,} matches, {matches / max(len(interests), 1):.1f} per interest)"
    )
    print(
        f"merge the digests of {len(subscribers):,} subscribers: {done - ranked_at:.2f} s "
        f"({empty:,} with nothing relevant)"
    )
    print(f"all subscribers' ranked picks: {done - started:.2f} s")
    # Peak memory of the same work, traced in a second pass (tracing slows it down).
    query_terms.cache_clear()  # tokenise the interests again, as the first pass did
    tracemalloc.start()
    ranked = rank(interests, papers, interest_vectors=vectors, params=MatchParams())
    chosen = merge_all(ranked, readers, args.max_papers)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"memory: peak {peak / 2**20:.0f} MiB allocated by ranking and merging "
        f"(max RSS grew {(rss_after - rss_before) / 1024:.0f} MiB; "
        f"process max RSS {rss_after / 1024:.0f} MiB, model included)"
    )
    _ = np  # numpy is what the matcher's work runs on


if __name__ == "__main__":
    main()
