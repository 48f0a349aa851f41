"""What every source format shares: the base class and small parsing helpers.

Pure: no network, no database. A source turns the bytes of one file or response into
PaperRecords; problems with the whole input raise SourceError, problems with one record
become a Skipped entry so the rest still load.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from datetime import UTC, datetime
from typing import Any, ClassVar

from newsletter.errors import SourceError
from newsletter.records import ParseResult, split_arxiv_id

_SPACES = re.compile(r"\s+")


class Source(ABC):
    """One input format, found by `name` in newsletter.sources.SOURCES."""

    name: ClassVar[str]
    extensions: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, now: datetime | None = None) -> None:
        # Formats that resolve partial dates ("Mar 11") need today's date; tests pin it.
        self.now = now or datetime.now(UTC)

    @abstractmethod
    def parse(self, data: bytes, origin: str) -> ParseResult:
        """Records of `data`; `origin` (path or URL) names the input in messages."""

    @classmethod
    def sniff(cls, data: bytes) -> bool:
        """True when `data` looks like this format (used by --format auto)."""
        return False


def decode_text(data: bytes, origin: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(f"{origin}: not UTF-8 text (byte {exc.start})") from None


def load_json(data: bytes, origin: str) -> Any:
    try:
        return json.loads(decode_text(data, origin))
    except json.JSONDecodeError as exc:
        raise SourceError(
            f"{origin}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None


def clean(text: object) -> str:
    """Collapse whitespace (feeds wrap titles and abstracts over several lines)."""
    return _SPACES.sub(" ", text).strip() if isinstance(text, str) else ""


def parse_time(value: object) -> datetime | None:
    """ISO 8601 date or datetime → aware UTC datetime; naive means UTC; junk → None."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def arxiv_ids(raw: str) -> tuple[str, int | None] | None:
    """('arxiv:2403.01234', 2) for '2403.01234v2'; None when it is not an arXiv id."""
    found = split_arxiv_id(raw)
    if found is None:
        return None
    return f"arxiv:{found[0]}", found[1]


def arxiv_urls(bare_id: str) -> tuple[str, str]:
    """Abstract page and PDF of an arXiv id without prefix or version."""
    return f"https://arxiv.org/abs/{bare_id}", f"https://arxiv.org/pdf/{bare_id}"


def string_list(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(clean(item) for item in value if isinstance(item, str) and item.strip())


def count(value: object) -> int | None:
    """A non-negative count; bool, negative or non-integer values are not counts."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value
