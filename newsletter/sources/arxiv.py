"""arXiv API Atom feeds (export.arxiv.org/api/query), read with feedparser.

`2403.01234v2` and `2403.01234v1` are one paper, `arxiv:2403.01234`, version 2 and 1.
Input that is not a feed at all (feedparser's bozo flag and no entries) is an error; a
well-formed feed without entries is an empty result.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import feedparser

from newsletter.errors import SourceError
from newsletter.sources.base import Source, arxiv_ids, arxiv_urls, clean, keep, parse_time
from newsletter.sources.records import PaperRecord, ParseResult

_API_ERRORS = "arxiv.org/api/errors"


class ArxivSource(Source):
    name = "arxiv"
    extensions = (".xml", ".atom")

    @classmethod
    def sniff(cls, data: bytes) -> bool:
        head = data[:2048].lstrip()
        return head.startswith(b"<") and (b"<feed" in head or b"<?xml" in head)

    def parse(self, data: bytes, origin: str) -> ParseResult:
        # Bytes, never a string: feedparser would treat a string as a URL and fetch it.
        feed = feedparser.parse(data, sanitize_html=False, resolve_relative_uris=False)
        if not feed.entries and (feed.bozo or not feed.version):
            problem = clean(str(feed.get("bozo_exception") or "no feed found"))
            raise SourceError(f"{origin}: not an Atom feed ({problem})")
        result = ParseResult()
        for number, entry in enumerate(feed.entries, start=1):
            if _API_ERRORS in str(entry.get("id", "")):
                message = clean(entry.get("summary")) or "the arXiv API reported an error"
                raise SourceError(f"{origin}: arXiv API error: {message}")
            outcome = _record(entry)
            keep(result, f"entry {number}", outcome)
        return result


def _record(entry: Any) -> PaperRecord | str:
    raw_id = str(entry.get("id") or "").strip()
    ids = arxiv_ids(raw_id.rsplit("/abs/", 1)[-1]) if raw_id else None
    if ids is None:
        return f"id {raw_id!r} is not an arXiv id" if raw_id else "no id"
    title = clean(entry.get("title"))
    if not title:
        return f"{ids[0]} has no title"
    bare = ids[0].removeprefix("arxiv:")
    abs_url, pdf_url = arxiv_urls(bare)
    return PaperRecord(
        external_id=ids[0],
        title=title,
        source="arxiv",
        abstract=clean(entry.get("summary")),
        authors=tuple(
            clean(a.get("name")) for a in entry.get("authors") or [] if clean(a.get("name"))
        ),
        categories=_categories(entry),
        # Versionless links always open the latest version (the feed's carry "v2").
        url=abs_url,
        pdf_url=pdf_url,
        version=ids[1] or 1,
        published_at=_time(entry, "published"),
        listed_at=_time(entry, "published"),
    )


def _categories(entry: Any) -> tuple[str, ...]:
    """The primary category first, then the other tags, without repeats."""
    terms: list[str] = []
    primary = entry.get("arxiv_primary_category")
    if isinstance(primary, dict) and primary.get("term"):
        terms.append(str(primary["term"]))
    terms.extend(str(tag.get("term")) for tag in entry.get("tags") or [] if tag.get("term"))
    return tuple(dict.fromkeys(terms))


def _time(entry: Any, key: str) -> datetime | None:
    parsed = parse_time(entry.get(key))
    if parsed is not None:
        return parsed
    struct = entry.get(f"{key}_parsed")
    if isinstance(struct, time.struct_time):
        return datetime(*struct[:6], tzinfo=UTC)
    return None


def id_query(api: str, arxiv_ids: Sequence[str]) -> str:
    """The API URL that returns these papers (`arxiv:` prefix and version optional)."""
    bare = [i.removeprefix("arxiv:") for i in arxiv_ids]
    return f"{api}?{urlencode({'id_list': ','.join(bare), 'max_results': len(bare)})}"


def title_query(api: str, title: str, results: int = 3) -> str:
    """The API URL that searches for a paper by its title (a BibTeX entry without id)."""
    words = " ".join(re.findall(r"\w+", title))
    query = {"search_query": 'ti:"' + words + '"', "max_results": results}
    return f"{api}?{urlencode(query)}"
