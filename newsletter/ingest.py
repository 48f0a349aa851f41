"""Ingest papers: read every source, parse it, then store them all in one transaction.

Reading and parsing happen before anything is written, so a missing file, a failed
download or a malformed feed leaves the store exactly as it was. Records a source
cannot use are skipped and reported; they never stop the others.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy.exc import DataError, IntegrityError

from newsletter.errors import InvalidInput, SourceError
from newsletter.runtime import Runtime
from newsletter.sources.fetch import DEFAULT_POLICY, FetchPolicy, fetch
from newsletter.sources.records import ParseResult, Skipped
from newsletter.sources.registry import FORMATS, detect, make_source
from newsletter.store import db
from newsletter.store.papers import upsert_papers

# The bundled sample (see newsletter/data/README.md): the demo ingests it, no network.
SAMPLE_PAPERS = Path(__file__).parent / "data" / "sample-papers.jsonl"
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


@dataclass(frozen=True)
class SourceSpec:
    location: str  # a file path or an http(s) URL
    format: str = "auto"


@dataclass
class SourceReport:
    location: str
    format: str
    records: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: list[Skipped] = field(default_factory=list)


@dataclass
class IngestReport:
    sources: list[SourceReport]

    @property
    def new(self) -> int:
        return sum(s.new for s in self.sources)

    @property
    def updated(self) -> int:
        return sum(s.updated for s in self.sources)

    @property
    def unchanged(self) -> int:
        return sum(s.unchanged for s in self.sources)

    @property
    def skipped(self) -> int:
        return sum(len(s.skipped) for s in self.sources)


@dataclass(frozen=True)
class Progress:
    """What ingest is doing: 'reading' / 'read' a source (index of total), then 'storing'."""

    step: str
    location: str
    done: int
    total: int


ProgressCallback = Callable[[Progress], None]


def resolve(context: Runtime, locations: Sequence[str] = (), fmt: str = "auto") -> list[SourceSpec]:
    """The given locations in format `fmt`, or else the sources in config.yaml."""
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown format {fmt!r} (use one of: {', '.join(FORMATS)})")
    if locations:
        return [SourceSpec(location, fmt) for location in locations]
    configured = [SourceSpec(s.location, s.format) for s in context.settings.sources]
    if not configured:
        raise InvalidInput("no SOURCE given and no `sources` in the config file")
    return configured


def ingest(
    context: Runtime,
    locations: Sequence[str] = (),
    fmt: str = "auto",
    *,
    now: datetime | None = None,
    policy: FetchPolicy = DEFAULT_POLICY,
    progress: ProgressCallback | None = None,
) -> IngestReport:
    """Load papers from files or URLs (none: the configured sources) into the store."""
    specs = resolve(context, locations, fmt)
    context.require_schema()
    parsed: list[tuple[SourceReport, ParseResult]] = []
    for index, spec in enumerate(specs):
        _notify(progress, Progress("reading", spec.location, index, len(specs)))
        parsed.append(read_and_parse(spec, now=now, policy=policy))
        _notify(progress, Progress("read", spec.location, index + 1, len(specs)))
    _notify(progress, Progress("storing", "", len(specs), len(specs)))
    _store(context, parsed)
    return IngestReport([report for report, _ in parsed])


def read_and_parse(
    spec: SourceSpec, *, now: datetime | None = None, policy: FetchPolicy = DEFAULT_POLICY
) -> tuple[SourceReport, ParseResult]:
    data = read(spec.location, policy)
    name = detect(spec.location, data) if spec.format == "auto" else spec.format
    result = make_source(name, now=now).parse(data, spec.location)
    report = SourceReport(spec.location, name, len(result.records), skipped=result.skipped)
    return report, result


def read(location: str, policy: FetchPolicy = DEFAULT_POLICY) -> bytes:
    """The bytes of a file or an http(s) URL."""
    if _URL.match(location):
        if not location.lower().startswith(("http://", "https://")):
            raise SourceError(f"{location}: only http(s) URLs and file paths can be read")
        return fetch(location, policy)
    path = Path(location).expanduser()
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise SourceError(f"{location}: file not found") from None
    except IsADirectoryError:
        raise SourceError(f"{location}: is a directory, not a file") from None
    except OSError as exc:
        raise SourceError(f"{location}: cannot read ({exc.strerror or exc})") from None


def _store(context: Runtime, parsed: list[tuple[SourceReport, ParseResult]]) -> None:
    # A concurrent ingest may insert the same new paper first (unique external_id):
    # the whole transaction is rolled back, so running it again is safe.
    for attempt in (1, 2):
        try:
            with db.transaction(context.sessions, immediate=True) as session:
                for report, result in parsed:
                    counts = upsert_papers(session, result.records)
                    report.new, report.updated = counts.new, counts.updated
                    report.unchanged = counts.unchanged
            return
        except IntegrityError:
            if attempt == 2:
                raise
        except DataError as exc:  # sources screen records; this is the last guard
            problem = str(exc.orig).strip().splitlines()[0]
            raise SourceError(f"the database refused a paper: {problem}") from None


def _notify(progress: ProgressCallback | None, event: Progress) -> None:
    if progress is not None:
        progress(event)
