"""Plain-text captures of a papers page (select all, copy, paste into a file).

The layout, as in a capture of huggingface.co/papers:

    a few header lines ("Get trending papers in your email inbox!", …)
    Mar 11                          ← the date line: the day every paper below was featured
    Title of the first paper
    Its abstract, one paragraph
    Title of the second paper
    …

with blank lines between blocks. A later date line starts a new day. The year is not
on the page: it is the latest year in which that date is not in the future. Papers on a
page have no external id, so the id is derived from the title (records.title_key).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from newsletter.errors import SourceError
from newsletter.sources.base import Source, clean, decode_text, keep
from newsletter.sources.records import PaperRecord, ParseResult, Skipped, title_key

MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DATE_LINE = re.compile(
    r"^(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?\s+(\d{1,2})(?:,?\s+(\d{4}))?$",
    re.IGNORECASE,
)


class PageSource(Source):
    name = "page"
    extensions = (".txt",)

    def parse(self, data: bytes, origin: str) -> ParseResult:
        result = ParseResult()
        day: datetime | None = None
        title: tuple[int, str] | None = None  # (line, text) waiting for its abstract
        for line, block in _blocks(decode_text(data, origin)):
            when = self._date(block)
            if when is not None:  # a new day: a title left without abstract is dropped
                _dangling(result, title)
                day, title = when, None
            elif day is None:
                continue  # header lines above the first date
            elif title is None:
                title = (line, block)
            else:
                keep(result, f"line {title[0]}", _record(title[1], block, day))
                title = None
        _dangling(result, title)
        if day is None:
            raise SourceError(f"{origin}: no date line such as 'Mar 11' found")
        if not result.records:
            raise SourceError(f"{origin}: no title/abstract pairs after the date line")
        return result

    def _date(self, block: str) -> datetime | None:
        match = _DATE_LINE.match(block)
        if not match:
            return None
        month, day = MONTHS.index(match.group(1)[:3].lower()) + 1, int(match.group(2))
        year = int(match.group(3)) if match.group(3) else self._latest_year(month, day)
        try:
            return datetime(year, month, day, tzinfo=UTC) if year else None
        except ValueError:
            return None  # "Feb 30" is not a date line but text

    def _latest_year(self, month: int, day: int) -> int:
        today = self.now.astimezone(UTC).date()
        for year in range(today.year, today.year - 8, -1):  # 8 years always holds a Feb 29
            try:
                if date(year, month, day) <= today:
                    return year
            except ValueError:
                continue
        return 0


def _blocks(text: str) -> list[tuple[int, str]]:
    """Paragraphs of the capture with the line each starts on, whitespace collapsed."""
    blocks: list[tuple[int, str]] = []
    lines: list[str] = []
    for number, line in enumerate([*text.splitlines(), ""], start=1):
        if line.strip():
            lines.append(line)
        elif lines:
            blocks.append((number - len(lines), clean(" ".join(lines))))
            lines = []
    return blocks


def _dangling(result: ParseResult, title: tuple[int, str] | None) -> None:
    if title is not None:
        result.skipped.append(Skipped(f"line {title[0]}", "title without abstract"))


def _record(title: str, abstract: str, day: datetime) -> PaperRecord:
    return PaperRecord(
        external_id=title_key(title),
        title=title,
        source="page",
        abstract=abstract,
        listed_at=day,
    )
