"""Papers: upsert from source records, and the queries planning and the web need."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from newsletter.sources.records import PaperRecord
from newsletter.store.meta import PAPERS_CHANGED, get_meta, set_meta
from newsletter.store.models import Paper, utcnow

_CHUNK = 500  # stays under every backend's bound-parameter limit
# Fields copied from a record onto the row. listed_at is kept from the first listing
# so that a paper seen again later is not presented as new again; source likewise
# records where the paper was first seen.
_FIXED = ("external_id", "listed_at", "version", "source")
_COPIED = [f.name for f in fields(PaperRecord) if f.name not in _FIXED]
_COUNTS = ("upvotes", "comments")
_LISTS = {"authors", "categories", "keywords"}


@dataclass
class UpsertCounts:
    new: int = 0
    updated: int = 0
    unchanged: int = 0


def upsert_papers(session: Session, records: Iterable[PaperRecord]) -> UpsertCounts:
    """Insert new papers, update known ones where the record is newer or adds data."""
    counts = UpsertCounts()
    by_id: dict[str, PaperRecord] = {}
    for record in records:  # the same paper twice in one batch: the later one wins
        by_id[record.external_id] = _merge_records(by_id.get(record.external_id), record)
    existing = _existing(session, list(by_id))
    now = utcnow()
    for external_id, record in by_id.items():
        row = existing.get(external_id)
        if row is None:
            session.add(_new_row(record, now))
            counts.new += 1
        elif _update_row(row, record, now):
            counts.updated += 1
        else:
            counts.unchanged += 1
    if counts.new or counts.updated:
        set_meta(session, PAPERS_CHANGED, uuid.uuid4().hex)  # see listing_stamp
    session.flush()
    return counts


def _existing(session: Session, external_ids: list[str]) -> dict[str, Paper]:
    found: dict[str, Paper] = {}
    for start in range(0, len(external_ids), _CHUNK):
        chunk = external_ids[start : start + _CHUNK]
        rows = session.scalars(select(Paper).where(Paper.external_id.in_(chunk)))
        found.update((row.external_id, row) for row in rows)
    return found


def _merge_records(old: PaperRecord | None, new: PaperRecord) -> PaperRecord:
    if old is None or new.version >= old.version:
        return new
    return old


def _new_row(record: PaperRecord, now: datetime) -> Paper:
    values = {name: _column_value(name, getattr(record, name)) for name in _COPIED}
    listed = record.listed_at or record.published_at or now
    return Paper(
        external_id=record.external_id,
        source=record.source,
        version=record.version,
        listed_at=listed,
        ingested_at=now,
        updated_at=now,
        **values,
    )


def _update_row(row: Paper, record: PaperRecord, now: datetime) -> bool:
    """Apply a record to a stored paper; True when anything changed.

    Counts are refreshed from any record. Descriptive fields are overwritten by a newer
    version, or by the same source again (its corrections); another source at the same
    version only fills gaps, so two sources that word a paper differently do not flip
    it back and forth on every run. An older version never overwrites them.
    """
    overwrite = record.version > row.version or (
        record.version == row.version and record.source == row.source
    )
    changed = False
    for name in _COPIED:
        value = _column_value(name, getattr(record, name))
        if value in (None, "", []):
            continue  # never erase known data
        if name not in _COUNTS and not overwrite and getattr(row, name) not in (None, "", []):
            continue
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
            if name in ("title", "abstract"):
                row.embedding = None  # stale: the matcher embeds it again
    if record.version > row.version:
        row.version = record.version
        changed = True
    if changed:
        row.updated_at = now
    return changed


def _column_value(name: str, value: object) -> object:
    return list(value) if name in _LISTS and isinstance(value, tuple) else value


def papers_listed_between(session: Session, start: datetime, end: datetime) -> Sequence[Paper]:
    query = select(Paper).where(Paper.listed_at >= start, Paper.listed_at < end)
    return session.scalars(query.order_by(Paper.id)).all()


def unembedded_between(
    session: Session, start: datetime, end: datetime, model: str
) -> list[tuple[int, str, str]]:
    """(id, title, abstract) of the papers listed in [start, end) with no embedding by
    `model`: what a run must embed, read without loading every paper and its vector."""
    query = (
        select(Paper.id, Paper.title, Paper.abstract)
        .where(Paper.listed_at >= start, Paper.listed_at < end)
        .where(or_(Paper.embedding.is_(None), Paper.embedding_model.is_distinct_from(model)))
        .order_by(Paper.id)
    )
    return [(row.id, row.title, row.abstract) for row in session.execute(query)]


def all_papers(session: Session) -> Sequence[Paper]:
    return session.scalars(select(Paper).order_by(Paper.id)).all()


def count_papers(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Paper)) or 0


def count_listed_between(session: Session, start: datetime, end: datetime) -> int:
    query = select(func.count()).where(Paper.listed_at >= start, Paper.listed_at < end)
    return session.scalar(query) or 0


def latest_listing(session: Session) -> datetime | None:
    return session.scalar(select(func.max(Paper.listed_at)))


def listing_stamp(session: Session) -> tuple[object, ...]:
    """Changes whenever a paper is added or an ingest changed one (upvotes too): what
    the home page's cache is keyed on. A key lookup and two indexed maxima, so it
    stays cheap however many papers there are (an aggregate over a column without an
    index would read them all)."""
    # One maximum per query: SQLite reads an index end only for a lone min() or max().
    newest_id = session.scalar(select(func.max(Paper.id)))
    return (get_meta(session, PAPERS_CHANGED), newest_id, latest_listing(session))


def set_embeddings(session: Session, model: str, vectors: Mapping[int, bytes]) -> None:
    """Store sentence embeddings (paper id → float32 bytes) made by `model`."""
    statement = (
        update(Paper)
        .where(Paper.id == bindparam("paper_id"))
        .values(embedding=bindparam("vector"), embedding_model=model)
    )
    rows = [{"paper_id": paper_id, "vector": vector} for paper_id, vector in vectors.items()]
    if rows:
        session.connection().execute(statement, rows)


def attach_embeddings(session: Session, model: str, vectors: Sequence[tuple[Paper, bytes]]) -> None:
    """Give loaded papers their embeddings by `model`, on the rows themselves: the
    ranking that follows reads them from there."""
    for paper, vector in vectors:
        paper.embedding = vector
        paper.embedding_model = model
    session.flush()


def papers_by_id(session: Session, paper_ids: Sequence[int]) -> dict[int, Paper]:
    """The papers with these ids, by id (in chunks under the bound-parameter limit)."""
    found: dict[int, Paper] = {}
    for start in range(0, len(paper_ids), _CHUNK):
        chunk = paper_ids[start : start + _CHUNK]
        found.update((p.id, p) for p in session.scalars(select(Paper).where(Paper.id.in_(chunk))))
    return found


def paper_ids_for(session: Session, external_ids: Sequence[str]) -> dict[str, int]:
    """Stored papers by external id (`arxiv:2403.01234`)."""
    found: dict[str, int] = {}
    unique = list(dict.fromkeys(external_ids))
    for start in range(0, len(unique), _CHUNK):
        query = select(Paper.external_id, Paper.id).where(
            Paper.external_id.in_(unique[start : start + _CHUNK])
        )
        found.update({external: paper_id for external, paper_id in session.execute(query)})
    return found


def paper_title(session: Session, paper_id: int) -> str | None:
    """The title of the paper with this id; None when no such paper is stored."""
    title: str | None = session.scalar(select(Paper.title).where(Paper.id == paper_id))
    return title
