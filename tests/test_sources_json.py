"""The project's own paper schema: json and jsonl."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from newsletter.errors import SourceError
from newsletter.sources.jsonfile import JsonlSource, JsonSource, dumps_jsonl, to_record
from newsletter.sources.records import PaperRecord, title_key
from newsletter.sources.registry import detect

FIXTURES = Path(__file__).parent / "fixtures"


def jsonl(path: Path):  # type: ignore[no-untyped-def]
    return JsonlSource().parse(path.read_bytes(), str(path))


def test_jsonl_loads_good_lines_and_reports_bad_records_by_line() -> None:
    result = jsonl(FIXTURES / "papers.jsonl")
    assert [r.external_id for r in result.records] == [
        "arxiv:2407.21787",
        "arxiv:2410.02170",
        title_key("Superposed Episodic and Semantic Memory via Sparse Distributed Representation"),
    ]
    assert [(s.where, s.reason) for s in result.skipped] == [
        ("line 5", "missing title"),
        ("line 6", "upvotes: Input should be greater than or equal to 0"),
    ]


def test_ids_dates_and_lists_follow_the_schema() -> None:
    traps, recall, _ = jsonl(FIXTURES / "papers.jsonl").records
    assert traps.authors == ("Matthieu Meeus", "Igor Shilov")
    assert traps.categories == ("cs.CL",)
    assert traps.published_at == datetime(2024, 7, 31, tzinfo=UTC)  # a date means UTC midnight
    assert traps.listed_at == datetime(2026, 11, 24, tzinfo=UTC)
    assert traps.source == "jsonl"
    assert (recall.external_id, recall.version) == ("arxiv:2410.02170", 3)


def test_a_json_document_may_wrap_papers_in_an_object() -> None:
    path = FIXTURES / "papers.json"
    result = JsonSource().parse(path.read_bytes(), str(path))
    (note,) = result.records
    assert note.external_id == "doi:10.1000/182"  # other schemes are kept as they are
    assert note.url == "https://doi.org/10.1000/182"
    assert note.source == "json"
    assert [s.where for s in result.skipped] == ["record 2"]
    assert "code_url" in result.skipped[0].reason  # javascript: links are refused


def test_a_json_list_of_papers_loads_too() -> None:
    result = JsonSource().parse(b'[{"id": "2401.00001v2", "title": "T", "version": 5}]', "x")
    assert (result.records[0].external_id, result.records[0].version) == ("arxiv:2401.00001", 5)


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        ({"title": "T", "authors": "Ada"}, "authors: Input should be a valid tuple"),
        ({"title": "T", "upvotes": True}, "upvotes: Input should be a valid integer"),
        (
            {"title": "T", "id": "not an id"},
            "id 'not an id' is neither an arXiv id nor scheme:value",
        ),
        ({"title": " \n "}, "empty title"),
        ([1, 2], "not a JSON object"),
    ],
)
def test_bad_records_are_skipped_with_a_reason(item: object, reason: str) -> None:
    assert to_record(item, "json") == reason


def test_invalid_jsonl_line_is_a_source_error_naming_file_and_line() -> None:
    with pytest.raises(SourceError, match=r"papers-malformed\.jsonl: line 2 is not valid JSON"):
        jsonl(FIXTURES / "papers-malformed.jsonl")


@pytest.mark.parametrize("data", [b'{"papers": 3}', b'"papers"', b"[1,", b"\xff\xfe"])
def test_a_json_file_of_the_wrong_shape_is_a_source_error(data: bytes) -> None:
    with pytest.raises(SourceError, match=r"^p\.json: "):
        JsonSource().parse(data, "p.json")


def test_dumped_records_read_back_identical() -> None:
    record = PaperRecord(
        external_id="arxiv:2403.01234",
        title="Title",
        source="hf",
        abstract="Abstract",
        summary="Short",
        authors=("A", "B"),
        categories=("cs.CV",),
        keywords=("k",),
        url="https://huggingface.co/papers/2403.01234",
        pdf_url="https://arxiv.org/pdf/2403.01234",
        thumbnail_url="https://example.org/t.png",
        code_url="https://github.com/example/code",
        upvotes=3,
        comments=0,
        version=2,
        published_at=datetime(2024, 3, 2, 17, tzinfo=UTC),
        listed_at=datetime(2026, 11, 25, tzinfo=UTC),
    )
    text = dumps_jsonl([record])
    assert json.loads(text)["id"] == "arxiv:2403.01234"
    assert JsonlSource().parse(text.encode(), "x").records == [record]


def test_auto_detection_by_extension_and_content() -> None:
    lines = (FIXTURES / "papers.jsonl").read_bytes()
    assert detect("papers.jsonl", lines) == "jsonl"
    assert detect("download", lines) == "jsonl"
    assert detect("download", b'{"papers": []}') == "json"
    assert detect("papers.json", b'{\n  "papers": []\n}') == "json"
