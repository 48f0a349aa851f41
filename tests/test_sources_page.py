"""Plain-text captures of a papers page, and the bundled sample derived from one."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from newsletter.errors import SourceError
from newsletter.ingest import SAMPLE_PAPERS
from newsletter.sources.jsonfile import JsonlSource, dumps_jsonl
from newsletter.sources.page import PageSource
from newsletter.sources.records import title_key
from newsletter.sources.registry import detect

FIXTURES = Path(__file__).parent / "fixtures"
CAPTURE = FIXTURES / "hf-papers-page.txt"
SMALL = FIXTURES / "page-small.txt"
# The day the bundled sample was generated (newsletter/data/README.md).
SAMPLE_DAY = datetime(2026, 11, 26, tzinfo=UTC)


def parse(text: str, now: datetime = SAMPLE_DAY):  # type: ignore[no-untyped-def]
    return PageSource(now=now).parse(text.encode(), "page.txt")


def test_it_reads_title_abstract_pairs_after_the_date_line() -> None:
    result = PageSource(now=SAMPLE_DAY).parse(SMALL.read_bytes(), str(SMALL))
    assert [r.title for r in result.records] == [
        "Copyright Traps for Large Language Models",
        "A Closer Look at Rehearsal-Free Continual Learning",
        "MemoRAG: Moving towards Next-Gen RAG Via Memory-Inspired Knowledge Discovery",
    ]
    first = result.records[0]
    assert first.abstract.startswith("Questions of fair use")
    assert first.external_id == title_key(first.title)
    assert first.listed_at == datetime(2026, 3, 11, tzinfo=UTC)
    assert first.source == "page"
    assert result.skipped == []


def test_the_real_capture_has_37_papers_none_lost() -> None:
    result = PageSource(now=SAMPLE_DAY).parse(CAPTURE.read_bytes(), str(CAPTURE))
    assert len(result.records) == 37 and result.skipped == []
    assert result.records[-1].title.startswith("Memorized Images in Diffusion Models")
    assert len({r.external_id for r in result.records}) == 37


@pytest.mark.parametrize(
    ("now", "year"),
    [
        (datetime(2026, 11, 26, tzinfo=UTC), 2026),
        (datetime(2026, 3, 11, tzinfo=UTC), 2026),  # today is not the future
        (datetime(2026, 3, 10, 23, 59, tzinfo=UTC), 2025),
        (datetime(2026, 1, 5, tzinfo=UTC), 2025),
    ],
)
def test_the_year_is_the_latest_in_which_the_date_is_not_in_the_future(
    now: datetime, year: int
) -> None:
    record = parse("Mar 11\n\nTitle\n\nAbstract.\n", now).records[0]
    assert record.listed_at == datetime(year, 3, 11, tzinfo=UTC)


def test_feb_29_goes_back_to_the_last_leap_year() -> None:
    record = parse("Feb 29\n\nT\n\nA.\n", datetime(2026, 11, 26, tzinfo=UTC)).records[0]
    assert record.listed_at == datetime(2024, 2, 29, tzinfo=UTC)


def test_a_later_date_line_starts_a_new_day_and_a_full_date_keeps_its_year() -> None:
    text = "header\n\nMar 11\n\nA\n\nabstract a\n\nMarch 9, 2024\n\nB\n\nabstract b\n"
    days = [r.listed_at for r in parse(text).records]
    assert days == [datetime(2026, 3, 11, tzinfo=UTC), datetime(2024, 3, 9, tzinfo=UTC)]


def test_a_title_without_abstract_is_skipped() -> None:
    result = parse("Mar 11\n\nA\n\nabstract a\n\nDangling title\n")
    assert [r.title for r in result.records] == ["A"]
    assert [(s.where, s.reason) for s in result.skipped] == [("line 7", "title without abstract")]


def test_lines_that_merely_start_like_a_month_are_not_dates() -> None:
    result = parse("Mar 11\n\nMayhem 12\n\nAn abstract.\n")
    assert [r.title for r in result.records] == ["Mayhem 12"]


def test_a_capture_without_a_date_line_is_a_source_error() -> None:
    malformed = FIXTURES / "page-malformed.txt"
    with pytest.raises(SourceError, match=r"page-malformed\.txt: no date line"):
        PageSource().parse(malformed.read_bytes(), str(malformed))


def test_a_capture_without_papers_is_a_source_error() -> None:
    with pytest.raises(SourceError, match="no title/abstract pairs"):
        parse("Subscribe\n\nMar 11\n")


def test_a_txt_file_is_detected_as_a_page() -> None:
    assert detect("capture.txt", CAPTURE.read_bytes()) == "page"
    assert detect("capture", CAPTURE.read_bytes()) == "page"


def test_the_bundled_sample_is_the_page_capture_parsed() -> None:
    records = PageSource(now=SAMPLE_DAY).parse(CAPTURE.read_bytes(), str(CAPTURE)).records
    bundled = SAMPLE_PAPERS.read_text(encoding="utf-8")
    assert bundled == dumps_jsonl(records)
    assert JsonlSource().parse(bundled.encode(), str(SAMPLE_PAPERS)).records == records


def test_a_title_left_open_by_a_new_day_is_skipped_and_the_day_goes_on() -> None:
    result = parse(
        "Mar 11\r\n\r\nA\r\n\r\nabstract a\r\n\r\nOrphan\r\n\r\nMar 12\r\n\r\nB\r\n\r\nb\r\n"
    )
    assert [(r.title, r.listed_at) for r in result.records] == [
        ("A", datetime(2026, 3, 11, tzinfo=UTC)),
        ("B", datetime(2026, 3, 12, tzinfo=UTC)),
    ]
    assert [(s.where, s.reason) for s in result.skipped] == [("line 7", "title without abstract")]
