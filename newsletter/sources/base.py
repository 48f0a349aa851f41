"""What every source format shares: the base class and small parsing helpers.

Pure: no network, no database. A source turns the bytes of one file or response into
PaperRecords; problems with the whole input raise SourceError, problems with one record
become a Skipped entry so the rest still load.
"""

from __future__ import annotations

import dataclasses
import json
import re
from abc import ABC, abstractmethod
from datetime import UTC, datetime
from typing import Any, ClassVar

from newsletter.errors import SourceError
from newsletter.sources.records import PaperRecord, ParseResult, Skipped, split_arxiv_id

_SPACES = re.compile(r"\s+")
# C0 and C1 control characters but tab, newline and carriage return. They have no
# place in a title or an abstract and would reach the pages and emails raw.
_CONTROLS = re.compile(r"[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SURROGATES = re.compile(r"[\ud800-\udfff]")
# Far above any real paper (arXiv caps abstracts at 1,920 characters); beyond them a
# record is junk or an attack on the store and on every email it would be sent in.
TITLE_MAX = 1_000
ABSTRACT_MAX = 20_000  # also for the summary
ITEM_MAX = 1_000  # one author, category, keyword or URL
ITEMS_MAX = 5_000  # authors of the largest collaborations, categories, keywords
COUNT_MAX = 2**31 - 1  # the store's integer columns (upvotes, comments, version)


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


def keep(result: ParseResult, where: str, outcome: PaperRecord | str) -> None:
    """Add a record that passes `screen` to `result`, or the reason it was skipped."""
    if isinstance(outcome, PaperRecord):
        outcome = screen(outcome)
    if isinstance(outcome, str):
        result.skipped.append(Skipped(where, outcome))
    else:
        result.records.append(outcome)


def screen(record: PaperRecord) -> PaperRecord | str:
    """The record with control characters removed, or why it cannot be stored.

    A NUL byte or a lone surrogate means the input is not text (PostgreSQL refuses
    both), so the record is skipped rather than guessed at; oversized fields are
    refused rather than cut, so a paper is never stored half-described.
    """
    changes: dict[str, Any] = {}
    for field in dataclasses.fields(record):
        value = getattr(record, field.name)
        if isinstance(value, str):
            problem = _not_text(field.name, value)
            if problem:
                return problem
            changes[field.name] = _CONTROLS.sub("", value)
        elif isinstance(value, tuple):
            if len(value) > ITEMS_MAX:
                return f"{field.name}: {len(value):,} entries (at most {ITEMS_MAX:,})"
            problem = next((p for p in (_not_text(field.name, v) for v in value) if p), None)
            if problem:
                return problem
            items = tuple(_CONTROLS.sub("", item) for item in value)
            changes[field.name] = tuple(item for item in items if item.strip())
    screened = dataclasses.replace(record, **changes)
    return _too_long(screened) or screened


def _not_text(name: str, value: str) -> str | None:
    if "\x00" in value:
        return f"{name} contains a NUL byte (binary data, not text)"
    if _SURROGATES.search(value):
        return f"{name} is not valid Unicode text (a lone surrogate)"
    return None


def _too_long(record: PaperRecord) -> str | None:
    if not record.title.strip():
        return "empty title"
    limits = {
        "title": TITLE_MAX,
        "abstract": ABSTRACT_MAX,
        "summary": ABSTRACT_MAX,
        "external_id": 200,  # the store's column sizes
        "source": 20,
    }
    for name, value in vars(record).items():
        if isinstance(value, str):
            limit = limits.get(name, ITEM_MAX)
            if len(value) > limit:
                return f"{name} is {len(value):,} characters long (at most {limit:,})"
        elif isinstance(value, tuple):
            longest = max((len(item) for item in value), default=0)
            if longest > ITEM_MAX:
                return f"{name}: an entry is {longest:,} characters long (at most {ITEM_MAX:,})"
        elif isinstance(value, int) and value > COUNT_MAX:
            return f"{name} {value:,} is out of range (at most {COUNT_MAX:,})"
    return None
