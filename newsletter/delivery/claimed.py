"""Jobs: leased deliveries with everything composing them needs, and the composers.

A Job is loaded in one go before sending (no queries while composing); composing is
pure CPU work, done inline or in worker processes (ProcessComposer) so that it runs on
the other cores while the sending process claims, sends and records.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date
from itertools import islice

from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.delivery.compose import Composer
from newsletter.errors import NewsletterError
from newsletter.mail.message import OutgoingMessage
from newsletter.planning.relevance import interests_for
from newsletter.planning.selection import paper_view
from newsletter.planning.weeks import week_dates
from newsletter.render.content import DigestItem, PaperView
from newsletter.runtime import Runtime
from newsletter.store import editions as editions_mod
from newsletter.store import plans
from newsletter.store.claims import ClaimedDelivery
from newsletter.store.editions import EditionInfo
from newsletter.store.papers import papers_by_id

ITEM_TUPLES = 4096  # distinct digests' items kept per loader


@dataclass(frozen=True)
class Job:
    """One leased delivery with everything composing it needs (no queries while sending)."""

    delivery: ClaimedDelivery
    edition_key: str
    week: tuple[date, date]
    items: tuple[DigestItem, ...]
    topics: tuple[str, ...]


def compose(composer: Composer, job: Job) -> OutgoingMessage:
    delivery = job.delivery
    return composer.digest(
        subscriber_id=delivery.subscriber_id,
        email=delivery.email,
        edition_key=job.edition_key,
        week_start=job.week[0],
        week_end=job.week[1],
        items=job.items,
        topics=job.topics,
        delivery_id=delivery.id,
    )


class JobLoader:
    """Turns leased deliveries into Jobs; papers and editions are loaded once per run."""

    def __init__(self, context: Runtime) -> None:
        self.context = context
        self._papers: dict[int, PaperView] = {}
        self._editions: dict[int, EditionInfo] = {}
        self._weeks: dict[int, tuple[date, date]] = {}
        self._interests: dict[tuple[tuple[str, ...], tuple[str, ...]], tuple[str, ...]] = {}
        self._item_tuples: dict[tuple[plans.PlannedPaper, ...], tuple[DigestItem, ...]] = {}

    def edition(self, session: Session, edition_id: int) -> EditionInfo:
        if edition_id not in self._editions:
            found = editions_mod.get_edition_by_id(session, edition_id)
            assert found is not None
            self._editions[edition_id] = found
        return self._editions[edition_id]

    def load(self, session: Session, deliveries: Sequence[ClaimedDelivery]) -> list[Job]:
        ids = [d.id for d in deliveries]
        planned = plans.planned_papers(session, ids)
        missing = {p.paper_id for rows in planned.values() for p in rows} - self._papers.keys()
        if missing:
            rows = papers_by_id(session, sorted(missing))
            self._papers.update((i, paper_view(p)) for i, p in rows.items())
        chosen = plans.interests_of(session, sorted({d.subscriber_id for d in deliveries}))
        jobs = []
        for delivery in deliveries:
            edition = self.edition(session, delivery.edition_id)
            topics, texts = chosen.get(delivery.subscriber_id, ([], []))
            items = self._items(planned[delivery.id])
            jobs.append(
                Job(delivery, edition.key, self._week(edition), items, self._labels(topics, texts))
            )
        return jobs

    def _items(self, planned: Sequence[plans.PlannedPaper]) -> tuple[DigestItem, ...]:
        """A digest's items; readers who chose alike share one tuple of the same items
        (which also keeps a composer's stencil lookups cheap)."""
        key = tuple(planned)
        items = self._item_tuples.get(key)
        if items is None:
            if len(self._item_tuples) >= ITEM_TUPLES:  # a run of readers who all differ
                self._item_tuples.clear()
            items = self._item_tuples[key] = tuple(
                DigestItem(self._papers[p.paper_id], p.reason, p.score)
                for p in planned
                if p.paper_id in self._papers
            )
        return items

    def _week(self, edition: EditionInfo) -> tuple[date, date]:
        if edition.id not in self._weeks:
            config = self.context.settings.digest
            self._weeks[edition.id] = week_dates(config, edition.window_start, edition.window_end)
        return self._weeks[edition.id]

    def _labels(self, topics: Sequence[str], texts: Sequence[str]) -> tuple[str, ...]:
        """Interest labels; readers share a handful of topic sets, so each is made once."""
        key = (tuple(topics), tuple(texts))
        if key not in self._interests:
            found = interests_for(self.context.settings, list(topics), list(texts))
            self._interests[key] = tuple(i.label for i in found)
        return self._interests[key]


Composed = OutgoingMessage | str  # a message, or why this reader's one cannot be made


class InlineComposer:
    """Composes in the calling thread, one job at a time as the caller iterates."""

    def __init__(self, composer: Composer) -> None:
        self.composer = composer

    def compose_all(self, jobs: Sequence[Job]) -> Iterator[Composed]:
        for job in jobs:
            try:
                yield compose(self.composer, job)
            except NewsletterError as exc:
                yield str(exc)

    def close(self) -> None:
        pass


class ProcessComposer:
    """Composes in worker processes, in order, a few slices ahead of the caller.

    Composing is pure CPU work (no database, no network), most of a message's cost;
    in one process it holds the interpreter lock the SMTP and database work need.
    Here it runs on the other cores while this process alone claims, sends and
    records: one lease owner, one writer.
    """

    SLICE = 64

    def __init__(self, settings: Settings, secret_key: str, processes: int) -> None:
        self.pool = ProcessPoolExecutor(
            processes,
            mp_context=multiprocessing.get_context("spawn"),  # no inherited threads/sockets
            initializer=_start_composer,
            initargs=(settings, secret_key, os.getpid()),
        )
        self.processes = processes

    def compose_all(self, jobs: Sequence[Job]) -> Iterator[Composed]:
        slices = [jobs[n : n + self.SLICE] for n in range(0, len(jobs), self.SLICE)]
        ahead: deque[Future[list[Composed]]] = deque()
        pending = iter(slices)
        for part in islice(pending, 2 * self.processes):
            ahead.append(self.pool.submit(_compose_slice, part))
        while ahead:
            done = ahead.popleft().result()
            for part in islice(pending, 1):
                ahead.append(self.pool.submit(_compose_slice, part))
            yield from done

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


_child_composer: Composer | None = None


PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
ORPHAN_CHECK_SECONDS = 1.0


def die_with_parent(parent: int) -> None:
    """End this child process when `parent` dies, even by SIGKILL.

    A pool child otherwise waits forever on its task queue (it holds both ends of
    the pipe, so it never sees end-of-file), holding its memory. Linux ends it at
    once (PR_SET_PDEATHSIG, which fires when the thread that started the child ends:
    the drain's own thread, which closes the pool before it returns); elsewhere, or
    as a fallback, a watchdog thread notices the child was re-parented.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the watchdog below still works
    if os.getppid() != parent:  # the parent died before the signal was asked for
        os._exit(1)
    threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True).start()


def _exit_when_orphaned(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(ORPHAN_CHECK_SECONDS)
    os._exit(1)


def _start_composer(settings: Settings, secret_key: str, parent: int) -> None:
    global _child_composer
    die_with_parent(parent)
    # Composing is throughput work; the sending process (and a local SMTP server)
    # wait on every reply, so they should win the CPU whenever they are ready.
    os.nice(10)
    _child_composer = Composer(settings, secret_key)


def _compose_slice(jobs: Sequence[Job]) -> list[Composed]:
    assert _child_composer is not None
    return list(InlineComposer(_child_composer).compose_all(jobs))
