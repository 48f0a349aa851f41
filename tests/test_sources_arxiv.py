"""The arXiv API Atom source."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from newsletter.errors import SourceError
from newsletter.sources.arxiv import ArxivSource
from newsletter.sources.registry import detect

FIXTURES = Path(__file__).parent / "fixtures"
FEED = FIXTURES / "arxiv-query.xml"


def records():  # type: ignore[no-untyped-def]
    return ArxivSource().parse(FEED.read_bytes(), str(FEED)).records


def test_it_reads_every_entry_of_the_feed() -> None:
    assert [r.external_id for r in records()] == [
        "arxiv:2403.01234",
        "arxiv:2310.01410",
        "arxiv:hep-th/9901001",
    ]


def test_the_version_is_split_from_the_id() -> None:
    revised = records()[0]
    assert (revised.external_id, revised.version) == ("arxiv:2403.01234", 2)


def test_titles_and_abstracts_lose_the_feed_line_wrapping() -> None:
    freereg = records()[1]
    assert freereg.title == (
        "FreeReg: Image-to-Point Cloud Registration Leveraging Pretrained Diffusion Models "
        "and Monocular Depth Estimators"
    )
    assert freereg.abstract.startswith("Matching cross-modality features between images and")
    assert freereg.abstract.endswith("registration & x < y.")  # entities decoded, kept as text


def test_it_keeps_authors_categories_dates_and_links() -> None:
    revised = records()[0]
    assert revised.authors == ("Ada Lovelace", "Grace Hopper")
    assert revised.categories == ("cs.CV", "cs.LG")  # primary first, no repeats
    assert revised.published_at == datetime(2024, 3, 2, 17, 0, tzinfo=UTC)
    assert revised.url == "https://arxiv.org/abs/2403.01234"  # versionless: the latest
    assert revised.pdf_url == "https://arxiv.org/pdf/2403.01234"
    assert revised.source == "arxiv"


def test_old_style_ids_keep_their_archive() -> None:
    old = records()[2]
    assert old.pdf_url == "https://arxiv.org/pdf/hep-th/9901001"
    assert old.categories == ("hep-th",)


def test_text_that_is_not_a_feed_is_a_source_error() -> None:
    malformed = FIXTURES / "arxiv-malformed.xml"
    with pytest.raises(SourceError, match=r"arxiv-malformed\.xml: not an Atom feed"):
        ArxivSource().parse(malformed.read_bytes(), str(malformed))


def test_a_feed_with_no_entries_is_empty_not_an_error() -> None:
    empty = (
        b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>q</title></feed>'
    )
    result = ArxivSource().parse(empty, "empty.xml")
    assert result.records == [] and result.skipped == []


def test_an_arxiv_api_error_entry_is_a_source_error_with_its_message() -> None:
    error_feed = b"""<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom">
    <entry><id>http://arxiv.org/api/errors#incorrect_id_format_for_1234</id><title>Error</title>
    <summary>incorrect id format for 1234</summary></entry></feed>"""
    with pytest.raises(SourceError, match="arXiv API error: incorrect id format for 1234"):
        ArxivSource().parse(error_feed, "q.xml")


def test_an_entry_with_a_foreign_id_is_skipped() -> None:
    feed = b"""<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom">
    <entry><id>urn:uuid:1</id><title>Not arXiv</title></entry></feed>"""
    result = ArxivSource().parse(feed, "q.xml")
    assert [(s.where, s.reason) for s in result.skipped] == [
        ("entry 1", "id 'urn:uuid:1' is not an arXiv id")
    ]


def test_auto_detection_recognises_a_feed() -> None:
    assert detect("query", FEED.read_bytes()) == "arxiv"
    assert detect("http://export.arxiv.org/api/query?search_query=cat:cs.CL", b"") == "arxiv"
