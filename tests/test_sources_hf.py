"""The Hugging Face daily papers source."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from newsletter.errors import SourceError
from newsletter.sources.hf import HfSource
from newsletter.sources.registry import SOURCES, detect, make_source

FIXTURES = Path(__file__).parent / "fixtures"
DAILY = FIXTURES / "hf-daily-papers.json"


def parse(data: bytes, origin: str = "daily.json"):  # type: ignore[no-untyped-def]
    return HfSource().parse(data, origin)


def test_it_maps_every_documented_field() -> None:
    result = parse(DAILY.read_bytes())
    memo = result.records[0]
    assert memo.external_id == "arxiv:2409.05591"
    assert memo.title.startswith("MemoRAG: Moving towards")
    assert memo.abstract.startswith(
        "Retrieval-Augmented Generation (RAG) leverages retrieval tools"
    )
    assert "\n" not in memo.abstract
    assert memo.summary == (
        "MemoRAG pairs a long-term memory model with a retriever to answer ambiguous queries."
    )
    assert memo.authors == ("Hongjin Qian", "Peitian Zhang", "Zheng Liu")
    assert memo.keywords == ("retrieval-augmented generation", "long-term memory", "RAG")
    assert memo.upvotes == 42
    assert memo.comments == 3
    assert memo.code_url == "https://github.com/qhjqhj00/MemoRAG"
    assert memo.thumbnail_url and memo.thumbnail_url.endswith("/2409.05591.png")
    assert memo.url == "https://huggingface.co/papers/2409.05591"
    assert memo.pdf_url == "https://arxiv.org/pdf/2409.05591"
    assert memo.published_at == datetime(2024, 9, 9, 13, 20, 41, tzinfo=UTC)
    assert memo.listed_at == datetime(2026, 11, 23, 0, 51, 9, 125000, tzinfo=UTC)
    assert memo.source == "hf"
    assert memo.version == 1


def test_it_skips_a_record_without_id_and_loads_the_rest() -> None:
    result = parse(DAILY.read_bytes())
    assert [r.external_id for r in result.records] == [
        "arxiv:2409.05591",
        "arxiv:2406.11813",
        "arxiv:2407.21787",
        "arxiv:2403.01234",
    ]
    assert [(s.where, s.reason) for s in result.skipped] == [("record 3", "no paper.id")]


def test_a_record_with_only_id_and_title_loads_with_empty_optionals() -> None:
    bare = parse(DAILY.read_bytes()).records[2]
    assert bare.title == "Copyright Traps for Large Language Models"
    assert (bare.abstract, bare.summary, bare.authors, bare.keywords) == ("", None, (), ())
    assert (bare.upvotes, bare.comments, bare.code_url, bare.thumbnail_url) == (None,) * 4
    assert bare.published_at is None and bare.listed_at is None


def test_a_record_without_title_is_skipped_with_its_id() -> None:
    data = json.dumps([{"paper": {"id": "2401.00001", "title": "  "}}, "junk"]).encode()
    result = parse(data)
    assert result.records == []
    assert [s.reason for s in result.skipped] == [
        "paper 2401.00001 has no title",
        "not a JSON object",
    ]


def test_a_versioned_id_is_one_paper_with_its_version() -> None:
    data = json.dumps([{"paper": {"id": "2401.00001v3", "title": "T"}}]).encode()
    record = parse(data).records[0]
    assert (record.external_id, record.version) == ("arxiv:2401.00001", 3)


def test_it_refuses_links_that_are_not_http() -> None:
    item = {"paper": {"id": "2401.00001", "title": "T", "githubRepo": "javascript:alert(1)"}}
    item["thumbnail"] = "data:image/png;base64,AAAA"
    record = parse(json.dumps([item]).encode()).records[0]
    assert record.code_url is None and record.thumbnail_url is None


def test_wrong_counts_are_dropped_not_trusted() -> None:
    item = {"paper": {"id": "2401.00001", "title": "T", "upvotes": -4}, "numComments": True}
    record = parse(json.dumps([item]).encode()).records[0]
    assert record.upvotes is None and record.comments is None


def test_invalid_json_is_a_source_error_naming_the_file() -> None:
    malformed = FIXTURES / "hf-daily-papers-malformed.json"
    with pytest.raises(SourceError, match=r"hf-daily-papers-malformed\.json: not valid JSON"):
        parse(malformed.read_bytes(), str(malformed))


def test_a_top_level_object_is_a_source_error() -> None:
    with pytest.raises(SourceError, match=r"daily\.json: expected a JSON list.*got dict"):
        parse(b'{"error": "rate limited"}')


def test_auto_detection_tells_a_daily_papers_list_from_our_json() -> None:
    assert detect("daily.json", DAILY.read_bytes()) == "hf"
    assert detect("https://huggingface.co/api/daily_papers?date=2026-11-25", b"[]") == "hf"
    assert detect("papers.json", b'[{"title": "x"}]') == "json"


def test_sources_are_found_by_name() -> None:
    assert set(SOURCES) == {"hf", "arxiv", "json", "jsonl", "page"}
    assert isinstance(make_source("hf"), HfSource)
    with pytest.raises(SourceError, match="unknown source format 'rss'"):
        make_source("rss")
