"""Realistic digest items for previews, tests and benchmarks (no database needed).

Titles and abstracts come from the bundled page capture; authors, counts and links are
made up in the shapes real sources give (long author lists, missing counts).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import newsletter
from newsletter.render.content import DigestItem, PaperView

DATA = Path(newsletter.__file__).resolve().parent / "data" / "sample-papers.jsonl"
AUTHORS = (
    "Runzhao Yao",
    "Shaoyi Du",
    "Wenting Cui",
    "Canhui Tang",
    "Chengwu Yang",
    "Haiwen Zhang",
    "Yuan Liu",
    "Zhen Dong",
    "Bisheng Yang",
    "Xiaowei Zhou",
)
TOPICS = ("Computer vision", "Large language models", "Memory")
_FALLBACK = {
    "title": "Attention Is All You Need",
    "abstract": "The dominant sequence transduction models are based on complex recurrent or "
    "convolutional neural networks. We propose a new simple network architecture, the "
    "Transformer, based solely on attention mechanisms. Experiments show these models to be "
    "superior in quality while being more parallelizable.",
}


def _records() -> list[dict[str, str]]:
    try:
        lines = DATA.read_text(encoding="utf-8").splitlines()
    except OSError:
        return [_FALLBACK]
    records = [json.loads(line) for line in lines if line.strip()]
    return [r for r in records if r.get("title") and r.get("abstract")] or [_FALLBACK]


def sample_items(count: int = 10, *, thumbnails: bool = True) -> tuple[DigestItem, ...]:
    records = _records()
    items = []
    for i in range(count):
        record = records[i % len(records)]
        number = f"2603.{10001 + i:05d}"
        paper = PaperView(
            id=i + 1,
            external_id=f"arxiv:{number}",
            title=record["title"],
            abstract=record["abstract"],
            authors=AUTHORS[: 1 + (i * 3) % len(AUTHORS)],
            url=f"https://huggingface.co/papers/{number}",
            pdf_url=f"https://arxiv.org/pdf/{number}",
            thumbnail_url=f"https://thumbs.example.org/{number}.png"
            if thumbnails and i % 2 == 0
            else None,
            upvotes=None if i % 4 == 3 else 140 - i * 11,
            comments=None if i % 3 == 2 else i + 1,
            listed_at=datetime(2026, 3, 11, tzinfo=UTC),
        )
        items.append(DigestItem(paper=paper, reason=TOPICS[i % len(TOPICS)], score=1.0 - i / 100))
    return tuple(items)
