"""Readers teach the digest: example papers ("papers like these") and feedback from the
email ("More like this" adds the paper to the examples, "Fewer like this" holds it and
what is close to it back). Matching them is planning's work (see
newsletter/matching/examples.py); this keeps them.

Example papers the store does not have are fetched from the arXiv API (`examples.
arxiv_api`) before anything is written: one request for every id, one per title-only
BibTeX entry. A reference that cannot be found fails the whole request with its name,
and the store stays as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from newsletter.errors import InvalidInput, NotFound, SourceError
from newsletter.runtime import Runtime
from newsletter.sources.arxiv import ArxivSource, id_query, title_query
from newsletter.sources.fetch import FetchPolicy, fetch
from newsletter.sources.records import PaperRecord, split_arxiv_id, title_key
from newsletter.sources.refs import PaperRef, parse_ref
from newsletter.store import db
from newsletter.store import examples as store
from newsletter.store.models import utcnow
from newsletter.store.papers import paper_ids_for, paper_title, upsert_papers
from newsletter.store.statuses import Feeling, Origin
from newsletter.store.subscribers import get_subscriber

Fetcher = Callable[[str], bytes]
_ID_BATCH = 50  # ids per arXiv API request
_TITLE_LOOKUPS = 10  # title searches per request: each is a round trip to arXiv
_POLICY = FetchPolicy(timeout=15.0, retries=1, backoff=1.0, max_wait=5.0, max_bytes=5_000_000)


@dataclass(frozen=True)
class Found:
    """Example papers resolved to stored ids, before anything is written."""

    external_ids: tuple[str, ...]  # every example, in the order given
    records: tuple[PaperRecord, ...] = ()  # fetched from arXiv, to store with them
    skipped: tuple[str, ...] = ()  # library entries arXiv does not have (lenient only)


def find_papers(
    runtime: Runtime,
    refs: Sequence[PaperRef],
    get: Fetcher | None = None,
    *,
    lenient: bool = False,
) -> Found:
    """Resolve references to papers, fetching the ones the store lacks. Writes nothing.

    A paper named by id that arXiv does not have fails the request. `lenient` (a
    library export, where books and journal papers are common) skips the entries arXiv
    does not have instead, and looks up at most `_TITLE_LOOKUPS` entries by title.
    """
    if not refs:
        return Found(())
    get = get or (lambda url: fetch(url, _POLICY))
    wanted = [r.arxiv_id for r in refs if r.arxiv_id]
    with db.transaction(runtime.sessions) as session:
        known = paper_ids_for(session, wanted)
    api = runtime.settings.examples.arxiv_api
    missing = [i for i in dict.fromkeys(wanted) if i not in known]
    records: dict[str, PaperRecord] = {}
    for start in range(0, len(missing), _ID_BATCH):
        for record in _ask(get, id_query(api, missing[start : start + _ID_BATCH])):
            records[record.external_id] = record
    order: list[str] = []
    lost: list[str] = []
    lookups = 0
    for ref in refs:
        if ref.arxiv_id:
            (order if ref.arxiv_id in known or ref.arxiv_id in records else lost).append(
                ref.arxiv_id
            )
            continue
        lookups += 1
        titled = _by_title(get, api, ref.title or "") if lookups <= _TITLE_LOOKUPS else None
        if titled is None:
            lost.append(ref.label)
        else:
            records[titled.external_id] = titled
            order.append(titled.external_id)
    if lost and not lenient:
        raise InvalidInput(f"not found on arXiv: {', '.join(lost[:5])}")
    kept = tuple(dict.fromkeys(order))
    if not kept and lost:
        raise InvalidInput(f"none of these is on arXiv: {', '.join(lost[:3])}")
    return Found(kept, tuple(r for r in records.values() if r.external_id in kept), tuple(lost))


def joined(first: Found, second: Found) -> Found:
    """Both finds as one, each paper once."""
    records = {r.external_id: r for r in (*first.records, *second.records)}
    return Found(
        tuple(dict.fromkeys((*first.external_ids, *second.external_ids))),
        tuple(records.values()),
        (*first.skipped, *second.skipped),
    )


def _ask(get: Fetcher, url: str) -> list[PaperRecord]:
    try:
        data = get(url)
    except SourceError as exc:
        raise InvalidInput(f"could not look up example papers on arXiv: {exc}") from None
    return ArxivSource().parse(data, "the arXiv API").records


def _by_title(get: Fetcher, api: str, title: str) -> PaperRecord | None:
    key = title_key(title)
    return next((r for r in _ask(get, title_query(api, title)) if title_key(r.title) == key), None)


def keep_examples(
    session: Session, subscriber_id: int, found: Found, origin: Origin, now: datetime
) -> list[int]:
    """Store what was fetched and make every found paper one of the reader's examples,
    in the caller's transaction (a subscription and its examples are one write)."""
    if found.records:
        upsert_papers(session, found.records)
    ids = paper_ids_for(session, found.external_ids)
    paper_ids = [ids[e] for e in found.external_ids]
    for paper_id in paper_ids:
        store.set_feeling(session, subscriber_id, paper_id, Feeling.LIKE, origin, now)
    return paper_ids


def add_examples(
    runtime: Runtime,
    subscriber_id: int,
    refs: Sequence[PaperRef],
    origin: Origin,
    *,
    lenient: bool = False,
) -> Found:
    """Add example papers to a reader's profile (preferences page); what was found."""
    found = find_papers(runtime, refs, lenient=lenient)
    with db.transaction(runtime.sessions, immediate=True) as session:
        check_room(session, runtime, subscriber_id, len(found.external_ids))
        keep_examples(session, subscriber_id, found, origin, utcnow())
    return found


def check_room(session: Session, runtime: Runtime, subscriber_id: int, adding: int) -> None:
    """Refuses more than `examples.max_per_reader` example papers."""
    limit = runtime.settings.examples.max_per_reader
    if store.count_likes(session, subscriber_id) + adding > limit:
        raise InvalidInput(f"at most {limit} example papers per reader")


@dataclass(frozen=True)
class Feedback:
    subscriber_id: int
    paper_id: int
    title: str
    feeling: Feeling


def give_feedback(
    runtime: Runtime, subscriber_id: int, paper_id: int, more: bool, origin: Origin
) -> Feedback:
    """ "More like this" (an example) or "fewer like this" (held back), by id."""
    feeling = Feeling.LIKE if more else Feeling.FEWER
    with db.transaction(runtime.sessions, immediate=True) as session:
        title = paper_title(session, paper_id)
        if title is None:
            raise NotFound(f"no paper with id {paper_id}")
        if more and not store.feels(session, subscriber_id, paper_id, Feeling.LIKE):
            check_room(session, runtime, subscriber_id, 1)
        store.set_feeling(session, subscriber_id, paper_id, feeling, origin, utcnow())
    return Feedback(subscriber_id, paper_id, title, feeling)


def feedback_by_email(runtime: Runtime, email: str, paper: str, more: bool) -> Feedback:
    """The admin's `newsletter feedback EMAIL PAPER_ID more|fewer`."""
    with db.transaction(runtime.sessions) as session:
        subscriber = get_subscriber(session, email)
        paper_id = _paper_id(session, paper)
    if subscriber is None:
        raise NotFound(f"no subscriber {email}")
    if paper_id is None:
        raise NotFound(f"no stored paper {paper!r} (give its arXiv id or its id in the store)")
    return give_feedback(runtime, subscriber.id, paper_id, more, Origin.ADMIN)


def _paper_id(session: Session, paper: str) -> int | None:
    """A stored paper by its number in the store, an arXiv id or link, or another
    external id; None when it is not stored."""
    text = paper.strip()
    if text.isdigit() and split_arxiv_id(text) is None:
        return int(text) if paper_title(session, int(text)) is not None else None
    try:
        external = parse_ref(text).arxiv_id or text
    except InvalidInput:
        external = text  # a paper known by another kind of id ("title:…")
    return paper_ids_for(session, [external]).get(external)


def paper_title_of(runtime: Runtime, paper_id: int) -> str | None:
    with db.transaction(runtime.sessions) as session:
        return paper_title(session, paper_id)


def forget(runtime: Runtime, subscriber_id: int, paper_id: int) -> bool:
    """Undo: the paper is neither an example nor held back any more."""
    with db.transaction(runtime.sessions, immediate=True) as session:
        return store.forget_feeling(session, subscriber_id, paper_id)


def felt_papers(runtime: Runtime, subscriber_id: int) -> list[store.FeltPaper]:
    """What the preferences page lists: the reader's examples and held-back papers."""
    with db.transaction(runtime.sessions) as session:
        return store.felt_papers(session, subscriber_id)
