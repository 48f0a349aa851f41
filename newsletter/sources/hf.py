"""Hugging Face daily papers: the JSON list that /api/daily_papers answers.

Each item is `{"paper": {...}, "thumbnail": ..., "numComments": ..., ...}`; `paper.id` is
an arXiv id. Items without an id or a title are skipped with a reason.
"""

from __future__ import annotations

from typing import Any

from newsletter.errors import SourceError
from newsletter.sources.base import (
    Source,
    arxiv_ids,
    clean,
    count,
    keep,
    load_json,
    parse_time,
    string_list,
)
from newsletter.sources.records import PaperRecord, ParseResult

PAPER_PAGE = "https://huggingface.co/papers/"


class HfSource(Source):
    name = "hf"
    extensions = (".json",)

    @classmethod
    def sniff(cls, data: bytes) -> bool:
        head = data[:4096].lstrip()
        return head.startswith(b"[") and b'"paper"' in head

    def parse(self, data: bytes, origin: str) -> ParseResult:
        items = load_json(data, origin)
        if not isinstance(items, list):
            raise SourceError(
                f"{origin}: expected a JSON list of daily papers, got {type(items).__name__}"
            )
        result = ParseResult()
        for number, item in enumerate(items, start=1):
            outcome = _record(item)
            keep(result, f"record {number}", outcome)
        return result


def _record(item: object) -> PaperRecord | str:
    """The record, or the reason it cannot be used."""
    if not isinstance(item, dict):
        return "not a JSON object"
    paper = item.get("paper")
    if not isinstance(paper, dict):
        return "no `paper` object"
    raw_id = paper.get("id")
    if not isinstance(raw_id, str) or not raw_id.strip():
        return "no paper.id"
    if len(raw_id) > 100:  # ids are stored in 200 characters, prefix included
        return "paper.id is too long"
    title = clean(paper.get("title")) or clean(item.get("title"))
    if not title:
        return f"paper {raw_id.strip()} has no title"
    return _build(item, paper, raw_id.strip(), title)


def _build(item: dict[str, Any], paper: dict[str, Any], raw_id: str, title: str) -> PaperRecord:
    ids = arxiv_ids(raw_id)
    if ids is None:  # not every paper page is an arXiv paper; keep HF's own id
        external_id, version, bare, pdf_url = f"hf:{raw_id}", 1, raw_id, None
    else:
        external_id, version = ids[0], ids[1] or 1
        bare = external_id.removeprefix("arxiv:")
        pdf_url = f"https://arxiv.org/pdf/{bare}"
    return PaperRecord(
        external_id=external_id,
        title=title,
        source="hf",
        abstract=clean(paper.get("summary")) or clean(item.get("summary")),
        summary=clean(paper.get("ai_summary")) or None,
        authors=tuple(
            clean(a["name"])
            for a in paper.get("authors") or []
            if isinstance(a, dict) and isinstance(a.get("name"), str) and a["name"].strip()
        ),
        keywords=string_list(paper.get("ai_keywords")),
        url=PAPER_PAGE + bare,
        pdf_url=pdf_url,
        thumbnail_url=_http_url(item.get("thumbnail")),
        code_url=_http_url(paper.get("githubRepo")),
        upvotes=count(paper.get("upvotes")),
        comments=count(item.get("numComments")),
        version=version,
        published_at=parse_time(paper.get("publishedAt")),
        listed_at=parse_time(paper.get("submittedOnDailyAt"))
        or parse_time(item.get("publishedAt")),
    )


def _http_url(value: object) -> str | None:
    # Links end up in emails: accept only http(s), never javascript: or data: URLs.
    if isinstance(value, str) and value.strip().lower().startswith(("https://", "http://")):
        return value.strip()
    return None
