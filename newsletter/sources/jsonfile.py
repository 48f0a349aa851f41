"""The project's own paper schema, as one JSON document (`json`) or JSON Lines (`jsonl`).

A `json` file is a list of paper objects, or an object `{"papers": [...]}`; a `jsonl` file
has one paper object per line (blank lines are ignored). A paper object:

    key            type                 meaning
    id             string, optional     "arxiv:2403.01234", "2403.01234v2" (an arXiv id,
                                        version split off), any other "scheme:value" kept
                                        as is; missing: derived from the title
                                        (newsletter.sources.records.title_key)
    title          string, required     the title
    abstract       string               the abstract
    summary        string               a one-sentence summary (shown above the abstract)
    authors        list of strings      author names, in order
    categories     list of strings      e.g. ["cs.CL", "cs.LG"], primary first
    keywords       list of strings      free keywords
    url            http(s) URL          the paper's page
    pdf_url        http(s) URL          the PDF
    thumbnail_url  http(s) URL          a preview image
    code_url       http(s) URL          the code repository
    upvotes        integer >= 0         community upvotes (ranking uses it)
    comments       integer >= 0         number of comments
    version        integer >= 1         overrides a version given in `id`; default 1
    published_at   ISO 8601 date/time   first publication; no zone means UTC
    listed_at      ISO 8601 date/time   the day it was featured; default published_at
    source         string (<= 20)       where it came from; default "json" / "jsonl"

Unknown keys are ignored, so files may carry more data. An object without a title, or
with a value of the wrong type, is skipped with a reason (so are records of every format
that `base.screen` refuses: binary text, giant fields); a file that is not JSON, or a
jsonl line that is not JSON, is an error. docs/paper-schema.md says the same for users.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator

from newsletter.errors import SourceError
from newsletter.sources.base import Source, arxiv_ids, clean, decode_text, keep, load_json
from newsletter.sources.records import PaperRecord, ParseResult, title_key

HttpUrl = Annotated[str, Field(pattern=r"^https?://\S+$")]
Names = tuple[Annotated[str, Field(min_length=1)], ...]


class PaperIn(BaseModel):
    """The schema above, validated."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: Annotated[str, Field(max_length=200)] | None = None  # the store's column size
    title: str
    abstract: str = ""
    summary: str | None = None
    authors: Names = ()
    categories: Names = ()
    keywords: Names = ()
    url: HttpUrl | None = None
    pdf_url: HttpUrl | None = None
    thumbnail_url: HttpUrl | None = None
    code_url: HttpUrl | None = None
    upvotes: Annotated[StrictInt, Field(ge=0)] | None = None
    comments: Annotated[StrictInt, Field(ge=0)] | None = None
    version: Annotated[StrictInt, Field(ge=1)] | None = None
    published_at: datetime | None = None
    listed_at: datetime | None = None
    source: Annotated[str, Field(min_length=1, max_length=20)] | None = None

    @field_validator("published_at", "listed_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None or value.tzinfo is not None:
            return value.astimezone(UTC) if value else None
        return value.replace(tzinfo=UTC)


class JsonSource(Source):
    name = "json"
    extensions = (".json",)

    @classmethod
    def sniff(cls, data: bytes) -> bool:
        return data[:64].lstrip().startswith((b"[", b"{"))

    def parse(self, data: bytes, origin: str) -> ParseResult:
        document = load_json(data, origin)
        items = document.get("papers") if isinstance(document, dict) else document
        if not isinstance(items, list):
            raise SourceError(f'{origin}: expected a JSON list of papers or {{"papers": [...]}}')
        result = ParseResult()
        for number, item in enumerate(items, start=1):
            _add(result, item, f"record {number}", self.name)
        return result


class JsonlSource(Source):
    name = "jsonl"
    extensions = (".jsonl", ".ndjson")

    @classmethod
    def sniff(cls, data: bytes) -> bool:
        first = next((line for line in data.lstrip().splitlines()[:1]), b"")
        try:
            item = json.loads(first)
        except ValueError:  # also UnicodeDecodeError
            return False
        # One complete object on the first line; `{"papers": [...]}` on one line is json.
        return isinstance(item, dict) and "papers" not in item

    def parse(self, data: bytes, origin: str) -> ParseResult:
        result = ParseResult()
        for number, line in enumerate(decode_text(data, origin).splitlines(), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SourceError(
                    f"{origin}: line {number} is not valid JSON ({exc.msg})"
                ) from None
            _add(result, item, f"line {number}", self.name)
        return result


def _add(result: ParseResult, item: object, where: str, default_source: str) -> None:
    keep(result, where, to_record(item, default_source))


def to_record(item: object, default_source: str) -> PaperRecord | str:
    """A PaperRecord from one schema object, or the reason it cannot be used."""
    if not isinstance(item, dict):
        return "not a JSON object"
    try:
        paper = PaperIn.model_validate(item)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"])
        return f"missing {key}" if error["type"] == "missing" else f"{key}: {error['msg']}"
    title = clean(paper.title)
    if not title:
        return "empty title"
    identity = _identity(paper.id, title)
    if isinstance(identity, str):
        return identity
    external_id, id_version = identity
    values = paper.model_dump(exclude={"id", "title", "version", "source", "abstract"})
    return PaperRecord(
        external_id=external_id,
        title=title,
        source=paper.source or default_source,
        abstract=clean(paper.abstract),
        version=paper.version or id_version or 1,
        **values,
    )


def _identity(raw: str | None, title: str) -> tuple[str, int | None] | str:
    if raw is None or not raw.strip():
        return title_key(title), None
    found = arxiv_ids(raw)
    if found is not None:
        return found
    scheme, _, value = raw.strip().partition(":")
    if scheme and value and " " not in raw.strip():
        return raw.strip(), None
    return f"id {raw!r} is neither an arXiv id nor scheme:value"


def to_json(record: PaperRecord) -> dict[str, Any]:
    """The schema object for a record: the inverse of to_record, empty fields left out."""
    data: dict[str, Any] = {"id": record.external_id, "title": record.title}
    for key, value in vars(record).items():
        if key in ("external_id", "title") or value in (None, "", ()):
            continue
        if key == "version" and value == 1:
            continue
        data[key] = value.isoformat() if isinstance(value, datetime) else value
    return data


def dumps_jsonl(records: list[PaperRecord]) -> str:
    """JSON Lines text for records, one per line (how newsletter/data was written)."""
    return "".join(json.dumps(to_json(r), ensure_ascii=False) + "\n" for r in records)
