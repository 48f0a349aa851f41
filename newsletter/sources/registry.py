"""The source formats by name: one small class per input format, found in SOURCES.

`newsletter ingest --format NAME` and the `format` key of a configured source pick a
class; `auto` asks `detect` to choose from the file name or URL and the first bytes.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from newsletter.errors import SourceError
from newsletter.sources.arxiv import ArxivSource
from newsletter.sources.base import Source
from newsletter.sources.hf import HfSource
from newsletter.sources.jsonfile import JsonlSource, JsonSource
from newsletter.sources.page import PageSource

__all__ = ["FORMATS", "SOURCES", "Source", "detect", "make_source"]

SOURCES: dict[str, type[Source]] = {
    cls.name: cls for cls in (HfSource, ArxivSource, JsonSource, JsonlSource, PageSource)
}
FORMATS = ("auto", *SOURCES)

# Well-known endpoints whose answers carry no telling file extension.
_KNOWN_URLS = {"huggingface.co/api/daily_papers": "hf", "arxiv.org/api/query": "arxiv"}


def make_source(name: str, *, now: datetime | None = None) -> Source:
    try:
        return SOURCES[name](now=now)
    except KeyError:
        known = ", ".join(SOURCES)
        raise SourceError(f"unknown source format {name!r} (known: {known})") from None


def detect(origin: str, data: bytes) -> str:
    """The format name for --format auto: known URL, then extension, then content."""
    lowered = origin.lower()
    for marker, name in _KNOWN_URLS.items():
        if marker in lowered:
            return name
    suffix = PurePosixPath(urlsplit(origin).path if "://" in origin else origin).suffix.lower()
    by_extension = [cls for cls in SOURCES.values() if suffix and suffix in cls.extensions]
    if len(by_extension) == 1:
        return by_extension[0].name
    candidates = by_extension or list(SOURCES.values())
    # hf before json: a daily-papers list is also valid JSON of another shape.
    for cls in (HfSource, JsonlSource, JsonSource, ArxivSource):
        if cls in candidates and cls.sniff(data):
            return cls.name
    return PageSource.name if PageSource in candidates else candidates[0].name
