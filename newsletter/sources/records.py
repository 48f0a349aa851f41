"""Plain data passed between layers: sources produce PaperRecords, the store keeps them.

Frozen dataclasses with no behaviour that touches I/O; imports nothing of newsletter.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime

ARXIV_ID = re.compile(
    r"^(?:arxiv:)?(\d{4}\.\d{4,5}|[a-z-]+(?:\.[A-Z]{2})?/\d{7})(?:v(\d+))?$", re.IGNORECASE
)


def split_arxiv_id(raw: str) -> tuple[str, int | None] | None:
    """'2403.01234v2' → ('2403.01234', 2); None when it is not an arXiv id."""
    match = ARXIV_ID.match(raw.strip())
    if not match:
        return None
    version = int(match.group(2)) if match.group(2) else None
    return match.group(1), version


def title_key(title: str) -> str:
    """A stable id for a paper known only by its title: case, accents, spacing ignored."""
    text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().lower()
    text = " ".join(re.findall(r"[a-z0-9]+", text))
    return "title:" + hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class PaperRecord:
    """One paper as a source describes it, before it is stored."""

    external_id: str  # "arxiv:2403.01234" or title_key(title)
    title: str
    source: str
    abstract: str = ""
    summary: str | None = None
    authors: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    url: str | None = None
    pdf_url: str | None = None
    thumbnail_url: str | None = None
    code_url: str | None = None
    upvotes: int | None = None
    comments: int | None = None
    version: int = 1
    published_at: datetime | None = None
    listed_at: datetime | None = None  # featured/published day; edition windows use it


@dataclass(frozen=True)
class Skipped:
    """An input record a source could not use, with the reason to report."""

    where: str  # "record 3", "line 17", "entry 2"
    reason: str


@dataclass
class ParseResult:
    records: list[PaperRecord] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
