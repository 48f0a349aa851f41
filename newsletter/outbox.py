"""Draining the outbox: claim due deliveries, compose, send, record each outcome.

Record first, send, record the outcome: a delivery is leased before it is sent and
marked sent in its own small transaction right after the server's 250 reply, so a
crash can repeat at most the messages in flight. 4xx replies, timeouts and drops are
retried with exponential backoff; 5xx replies fail at once and count as a hard
bounce. When too many recent attempts of an edition fail, the edition pauses and
says why; `send-now` resumes it.

How it goes fast without loosening that: one thread claims batches and composes
(optionally in worker processes, `DrainOptions.processes`), a bounded queue feeds
one sending thread per SMTP connection, and sent marks are group-committed by
MarkWriter: a connection sends nothing more until its mark is durable.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import islice
from typing import Literal, Protocol

from sqlalchemy import Connection as SqlConnection
from sqlalchemy.orm import Session

from newsletter import db, digest
from newsletter.addresses import normalize_email
from newsletter.compose import Composer
from newsletter.config import Settings
from newsletter.context import Context
from newsletter.digest import paper_view, week_dates
from newsletter.errors import NewsletterError, NotFound, NothingToSend
from newsletter.mail.message import OutgoingMessage
from newsletter.mail.smtp import SendError, SmtpPool
from newsletter.models import Delivery, utcnow
from newsletter.relevance import interests_for
from newsletter.store import outbox as store
from newsletter.store.outbox import ClaimedDelivery, EditionInfo
from newsletter.store.subscribers import get_subscriber
from newsletter.views import DigestItem, PaperView

Outcome = Literal["sent", "failed", "retried", "released"]
POLL_SECONDS = 5.0  # how often a looping worker looks for due work when idle


class Transport(Protocol):
    size: int

    def send(self, sender: str, recipient: str, data: bytes) -> None: ...


@dataclass
class Counters:
    """What a run did; updated from the sending threads."""

    sent: int = 0
    failed: int = 0
    skipped: int = 0
    retried: int = 0
    bounced: int = 0
    released: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    paused_reason: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)

    @property
    def attempts(self) -> int:
        return self.sent + self.failed + self.retried

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.skipped

    @property
    def duration(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def rate(self) -> float:
        return self.sent / self.duration if self.duration > 0 else 0.0


@dataclass(frozen=True)
class Job:
    """One leased delivery with everything composing it needs (no queries while sending)."""

    delivery: ClaimedDelivery
    edition_key: str
    week: tuple[date, date]
    items: tuple[DigestItem, ...]
    topics: tuple[str, ...]


Ready = tuple[Job, OutgoingMessage]  # a composed message waiting for a connection


def lease_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


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
    )


class JobLoader:
    """Turns leased deliveries into Jobs; papers and editions are loaded once per run."""

    def __init__(self, context: Context) -> None:
        self.context = context
        self._papers: dict[int, PaperView] = {}
        self._editions: dict[int, EditionInfo] = {}
        self._weeks: dict[int, tuple[date, date]] = {}
        self._interests: dict[tuple[tuple[str, ...], tuple[str, ...]], tuple[str, ...]] = {}

    def edition(self, session: Session, edition_id: int) -> EditionInfo:
        if edition_id not in self._editions:
            found = store.get_edition_by_id(session, edition_id)
            assert found is not None
            self._editions[edition_id] = found
        return self._editions[edition_id]

    def load(self, session: Session, deliveries: Sequence[ClaimedDelivery]) -> list[Job]:
        ids = [d.id for d in deliveries]
        planned = store.planned_papers(session, ids)
        missing = {p.paper_id for rows in planned.values() for p in rows} - self._papers.keys()
        if missing:
            rows = store.papers_by_id(session, sorted(missing))
            self._papers.update((i, paper_view(p)) for i, p in rows.items())
        chosen = store.interests_of(session, sorted({d.subscriber_id for d in deliveries}))
        jobs = []
        for delivery in deliveries:
            edition = self.edition(session, delivery.edition_id)
            topics, texts = chosen.get(delivery.subscriber_id, ([], []))
            items = tuple(
                DigestItem(self._papers[p.paper_id], p.reason, p.score)
                for p in planned[delivery.id]
                if p.paper_id in self._papers
            )
            jobs.append(
                Job(delivery, edition.key, self._week(edition), items, self._labels(topics, texts))
            )
        return jobs

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


@dataclass
class DrainOptions:
    edition_id: int | None = None  # None: every edition that is sending
    subscriber_id: int | None = None
    ignore_schedule: bool = False  # send-now: deliver never-tried ones at once
    wait_for_retries: bool = False  # keep going until the edition has nothing open
    loop: bool = False  # a worker that keeps polling until stopped
    batch_size: int | None = None
    processes: int = 0  # > 0: compose in that many processes (see ProcessComposer)


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

    Composing is pure CPU work (no database, no network), about three quarters of a
    message's cost; in one process it holds the interpreter lock the SMTP and
    database work need. Here it runs on the other cores while this process claims,
    sends and records exactly as before: one lease owner, one writer.
    """

    SLICE = 64

    def __init__(self, settings: Settings, secret_key: str, processes: int) -> None:
        self.pool = ProcessPoolExecutor(
            processes,
            mp_context=multiprocessing.get_context("spawn"),  # no inherited threads/sockets
            initializer=_start_composer,
            initargs=(settings, secret_key),
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


def _start_composer(settings: Settings, secret_key: str) -> None:
    global _child_composer
    # Composing is throughput work; the sending process (and a local SMTP server)
    # wait on every reply, so they should win the CPU whenever they are ready.
    os.nice(10)
    _child_composer = Composer(settings, secret_key)


def _compose_slice(jobs: Sequence[Job]) -> list[Composed]:
    assert _child_composer is not None
    return list(InlineComposer(_child_composer).compose_all(jobs))


class MarkWriter:
    """Records accepted messages with group commit; `sent` returns once it is durable.

    A sending thread calls `sent` right after the server's 250 and sends nothing more
    until it returns, so a crash can repeat at most one message per connection. The
    first caller to find no commit running becomes the leader and commits every mark
    waiting at that moment in one transaction; the others wait for that commit. Under
    load one commit carries several marks, and SQLite's single writer is asked once.
    """

    def __init__(self, context: Context) -> None:
        self.context = context
        self._connection: SqlConnection | None = None  # used by one leader at a time
        self._cond = threading.Condition()
        self._open: _Group = _Group()
        self._writing = False

    def sent(self, mark: store.SentMark) -> None:
        with self._cond:
            group = self._open
            group.marks.append(mark)
            while not group.done:
                if self._writing:
                    self._cond.wait()
                    continue
                self._writing = True
                batch, self._open = self._open, _Group()
                self._cond.release()
                try:
                    batch.error = self._write(batch.marks)
                finally:
                    self._cond.acquire()
                    self._writing = False
                    batch.done = True
                    self._cond.notify_all()
        if group.error is not None:
            raise group.error

    def _write(self, marks: Sequence[store.SentMark]) -> BaseException | None:
        # One connection held for the run: a session per commit would cost more
        # than the statements themselves.
        if self._connection is None:
            self._connection = self.context.engine.connect()
        try:
            store.mark_sent_many(self._connection, marks)
            self._connection.commit()
        except Exception as exc:  # every waiter of this group learns of it
            self.close()
            return exc
        return None

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()  # rolls back anything uncommitted


@dataclass
class _Group:
    marks: list[store.SentMark] = field(default_factory=list)
    done: bool = False
    error: BaseException | None = None


class Drainer:
    """One run of sending: a lease owner, a composer, a pool, and the counters.

    The calling thread claims batches and queues their jobs; one sending thread per
    SMTP connection composes, sends and records each. The queue holds one batch, so
    the next batch is claimed while the current one goes out.
    """

    def __init__(
        self,
        context: Context,
        transport: Transport,
        *,
        composer: Composer | None = None,
        stop: threading.Event | None = None,
        progress: Callable[[Counters], None] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.context = context
        self.settings = context.settings
        self.transport = transport
        self.composer = composer or Composer(context.settings, context.secret_key)
        self.stop = stop or threading.Event()
        self.progress = progress or (lambda counters: None)
        self.clock = clock
        self.owner = lease_owner()
        self.counters = Counters()
        self.loader = JobLoader(context)
        self.writer = MarkWriter(context)
        self.composing: InlineComposer | ProcessComposer = InlineComposer(self.composer)
        self._halt = threading.Event()  # paused or broken: queued jobs go back untouched
        self._released: list[int] = []
        self._errors: list[BaseException] = []

    def run(self, options: DrainOptions) -> Counters:
        if options.processes > 0:
            secret = self.context.secret_key
            self.composing = ProcessComposer(self.settings, secret, options.processes)
        try:
            return self._run(options)
        finally:
            self.composing.close()

    def _run(self, options: DrainOptions) -> Counters:
        size = options.batch_size or self.settings.delivery.batch_size
        # Composed messages waiting for a connection: enough to keep every connection
        # busy while the next batch is claimed, few enough to bound memory.
        jobs: queue.Queue[Ready | None] = queue.Queue(max(4 * self.transport.size, min(size, 200)))
        senders = [
            threading.Thread(target=self._sender, args=(jobs,), name=f"send-{n}", daemon=True)
            for n in range(self.transport.size)
        ]
        for thread in senders:
            thread.start()
        try:
            self._feed(options, size, jobs)
        finally:
            if self._errors or self.stop.is_set():
                self._halt.set()
            for _ in senders:
                jobs.put(None)
            for thread in senders:
                thread.join()
            self.writer.close()
            if self._released:
                with db.transaction(self.context.sessions) as session:
                    store.release(session, self.owner, self._released)
                self.counters.add("released", len(self._released))
        if self._errors:
            raise self._errors[0]
        self.counters.finished = time.monotonic()
        return self.counters

    def _feed(self, options: DrainOptions, size: int, jobs: queue.Queue[Ready | None]) -> None:
        editions: set[int] = set()
        checked = 0  # outcomes seen by the last failure check
        while not (self.stop.is_set() or self._errors):
            claimed = self._claim(options, size)
            self._compose_into(jobs, claimed)
            if not claimed:
                jobs.join()  # everything claimed so far has an outcome
            editions |= {j.delivery.edition_id for j in claimed}
            outcomes = self.counters.attempts
            # The failure breaker judges what was sent: once per batch of outcomes.
            if outcomes - checked >= size or (not claimed and outcomes > checked):
                checked = outcomes
                self._after_batch(editions)
            if options.edition_id is not None and self._paused(options.edition_id):
                self._halt.set()
                jobs.join()
                break
            if not claimed and not self._wait_for_more(options):
                break

    def _compose_into(self, jobs: queue.Queue[Ready | None], claimed: Sequence[Job]) -> None:
        """Compose on this one thread (or its processes): senders hardly need the GIL."""
        composed = self.composing.compose_all(claimed)
        queued = 0
        try:
            for job, message in zip(claimed, composed, strict=True):
                if self._halt.is_set() or self.stop.is_set() or self._errors:
                    break
                queued += 1
                if isinstance(message, str):  # unusable data for this reader (e.g. address)
                    self._failed(job.delivery, f"cannot compose: {message}", hard_bounce=False)
                    continue
                jobs.put((job, message))  # blocks while the connections are busy
        finally:  # stopping, or composing broke: the rest goes back untouched
            with self.counters._lock:
                self._released.extend(j.delivery.id for j in claimed[queued:])

    def _sender(self, jobs: queue.Queue[Ready | None]) -> None:
        while (ready := jobs.get()) is not None:
            job, message = ready
            try:
                if self._halt.is_set() or self.stop.is_set() or self._errors:
                    outcome: Outcome = "released"  # leave it for the next worker, untouched
                else:
                    outcome = self._deliver(job, message)
                if outcome == "released":
                    with self.counters._lock:
                        self._released.append(job.delivery.id)
            except BaseException as exc:  # surfaced by run(); the rest is released
                self._errors.append(exc)
                with self.counters._lock:
                    self._released.append(job.delivery.id)
            finally:
                jobs.task_done()
        jobs.task_done()

    # --- claiming ---

    def _claim(self, options: DrainOptions, size: int) -> list[Job]:
        now = self.clock()
        with db.transaction(self.context.sessions, immediate=True) as session:
            claimed, skipped = store.claim_batch(
                session,
                self.owner,
                now,
                self.settings.delivery.lease_seconds,
                size,
                edition_id=options.edition_id,
                subscriber_id=options.subscriber_id,
                ignore_schedule=options.ignore_schedule,
            )
        if skipped:
            self.counters.add("skipped", skipped)
            self.progress(self.counters)
        if not claimed:
            return []
        with db.transaction(self.context.sessions) as session:
            return self.loader.load(session, claimed)

    def _wait_for_more(self, options: DrainOptions) -> bool:
        """Nothing due now: sleep until something may be, or say the run is over."""
        if not (options.loop or options.wait_for_retries):
            return False
        with db.transaction(self.context.sessions, immediate=True) as session:  # reads, writes
            edition_id = options.edition_id
            if edition_id is not None and not store.count_open(session, edition_id):
                store.finish_edition_if_complete(session, edition_id, self.clock())
                return False
            wake = store.next_wakeup(session, options.edition_id)
        delay = POLL_SECONDS
        if wake is not None:
            delay = min(delay, max((wake - self.clock()).total_seconds(), 0.0) + 0.01)
        self.stop.wait(delay)
        return True

    def _paused(self, edition_id: int) -> bool:
        with db.transaction(self.context.sessions) as session:
            edition = store.get_edition_by_id(session, edition_id)
        if edition is not None and edition.status == "paused":
            self.counters.paused_reason = edition.paused_reason
            return True
        return False

    # --- sending ---

    def _deliver(self, job: Job, message: OutgoingMessage) -> Outcome:
        try:
            self.transport.send(message.sender, message.recipient, message.data)
        except SendError as exc:
            return self._on_error(job.delivery, exc)
        # Nothing more goes out on this connection until the mark is committed.
        self.writer.sent(store.SentMark(job.delivery, message.message_id, self.clock()))
        self.counters.add("sent")
        self.progress(self.counters)
        return "sent"

    def _on_error(self, delivery: ClaimedDelivery, exc: SendError) -> Outcome:
        if exc.permanent:
            return self._failed(delivery, str(exc), hard_bounce=True)
        config = self.settings.delivery
        attempts = delivery.attempts + 1
        if attempts >= config.max_attempts:
            return self._failed(delivery, f"gave up after {attempts} attempts: {exc}", False)
        now = self.clock()
        retry_at = now + timedelta(seconds=config.retry_base_seconds * 2 ** (attempts - 1))
        with db.transaction(self.context.sessions) as session:
            store.mark_retry(session, delivery, self.owner, str(exc), retry_at, now)
        self.counters.add("retried")
        self.progress(self.counters)
        return "retried"

    def _failed(self, delivery: ClaimedDelivery, error: str, hard_bounce: bool) -> Outcome:
        now = self.clock()
        bounce_after = self.settings.delivery.bounce_after
        with db.transaction(self.context.sessions) as session:
            store.mark_failed(session, delivery, self.owner, error, now, permanent=hard_bounce)
            bounced = hard_bounce and store.record_hard_bounce(
                session, delivery.subscriber_id, bounce_after, now
            )
        self.counters.add("failed")
        if bounced:
            self.counters.add("bounced")
        self.progress(self.counters)
        return "failed"

    def _after_batch(self, edition_ids: Iterable[int]) -> None:
        config = self.settings.delivery
        for edition_id in edition_ids:
            # Immediate: it reads, then may write, while the senders commit marks; a
            # deferred SQLite transaction could not upgrade after their commits.
            with db.transaction(self.context.sessions, immediate=True) as session:
                failed, total = store.failure_share(session, edition_id, config.failure_window)
                if total >= config.failure_window and failed / total > config.failure_threshold:
                    reason = (
                        f"{failed} of the last {total} attempts failed "
                        f"(more than {config.failure_threshold:.0%}); check the SMTP server "
                        "and the deliveries' last errors, then run `newsletter send-now`"
                    )
                    store.pause_edition(session, edition_id, reason)
                else:
                    store.finish_edition_if_complete(session, edition_id, self.clock())


def drain(
    context: Context,
    options: DrainOptions,
    *,
    transport: Transport | None = None,
    composer: Composer | None = None,
    stop: threading.Event | None = None,
    progress: Callable[[Counters], None] | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> Counters:
    """Send what is due (see DrainOptions) over `transport` or a new SMTP pool."""
    pool = transport or SmtpPool(context.settings.smtp)
    try:
        drainer = Drainer(
            context, pool, composer=composer, stop=stop, progress=progress, clock=clock
        )
        return drainer.run(options)
    finally:
        if transport is None and isinstance(pool, SmtpPool):
            pool.close()


# --- send-now, dry runs and previews --------------------------------------------------


@dataclass(frozen=True)
class SendNowResult:
    edition_key: str
    planned: int
    resumed: bool
    counters: Counters
    dry_run_bytes: list[int] = field(default_factory=list)  # message sizes, --dry-run only


class _Rollback(Exception):
    """Raised inside a transaction to undo it (dry runs and previews record nothing)."""


def send_now(
    context: Context,
    *,
    email: str | None = None,
    dry_run: bool = False,
    transport: Transport | None = None,
    stop: threading.Event | None = None,
    progress: Callable[[Counters], None] | None = None,
    on_planned: Callable[[int], None] | None = None,
    clock: Callable[[], datetime] = utcnow,
    workers: int = 1,
) -> SendNowResult:
    """Plan this week's edition if needed, resume it if paused, and drain it now.

    `on_planned` gets the number of deliveries left to send, for a progress bar.
    `workers` > 1 sends from that many processes (see drain_processes; they use the
    real clock and their own SMTP pools, so `transport` and `clock` apply to planning
    only).
    """
    address = _known_address(context, email) if email else None
    if dry_run:
        return _dry_run(context, address, clock())
    plan = digest.plan_edition(context, clock(), address)
    edition = plan.edition
    subscriber_id = None
    with db.transaction(context.sessions) as session:
        resumed = store.resume_edition(session, edition.id) and edition.status == "paused"
        open_count = store.count_open(session, edition.id)
        if address is not None:
            subscriber_id = _subscriber_id(session, address)
    if on_planned is not None:
        on_planned(open_count)
    options = DrainOptions(
        edition_id=edition.id,
        subscriber_id=subscriber_id,
        ignore_schedule=True,
        wait_for_retries=True,
        processes=workers if workers > 1 else 0,
    )
    counters = drain(
        context, options, transport=transport, stop=stop, progress=progress, clock=clock
    )
    return SendNowResult(edition.key, plan.planned, resumed, counters)


def _dry_run(context: Context, address: str | None, now: datetime) -> SendNowResult:
    digest.embed_window(context, now)  # kept, although the plan below is rolled back
    composer = Composer(context.settings, context.secret_key)
    counters = Counters()
    sizes: list[int] = []
    result: list[tuple[str, int]] = []
    try:
        with db.transaction(context.sessions, immediate=True) as session:
            plan = digest.plan_in(session, context.settings, now, address)
            subscriber_id = _subscriber_id(session, address) if address else None
            deliveries = store.open_deliveries(session, plan.edition.id, subscriber_id)
            for job in JobLoader(context).load(session, deliveries):
                sizes.append(len(compose(composer, job).data))
            result.append((plan.edition.key, plan.planned))
            raise _Rollback
    except _Rollback:
        pass
    counters.finished = time.monotonic()
    key, planned = result[0]
    return SendNowResult(key, planned, False, counters, sizes)


def _known_address(context: Context, email: str) -> str:
    return normalize_email(email)


def _subscriber_id(session: Session, address: str) -> int:
    subscriber = get_subscriber(session, address)
    if subscriber is None:
        raise NotFound(f"no subscriber with address {address}")
    return subscriber.id


@dataclass(frozen=True)
class Preview:
    edition_key: str
    message: OutgoingMessage
    items: tuple[DigestItem, ...]
    kind: str  # digest | quiet
    status: str  # the delivery's state: queued (would be sent now), sent, …


def preview(context: Context, email: str, now: datetime | None = None) -> Preview:
    """Exactly what send-now would send this reader now; records nothing."""
    address = _known_address(context, email)
    now = now or utcnow()
    digest.embed_window(context, now)  # kept, although the plan below is rolled back
    composer = Composer(context.settings, context.secret_key)
    found: list[Preview] = []
    try:
        with db.transaction(context.sessions, immediate=True) as session:
            subscriber_id = _subscriber_id(session, address)
            plan = digest.plan_in(session, context.settings, now, address)
            row = session.get(Delivery, _delivery_id(session, plan.edition.id, subscriber_id))
            assert row is not None
            claimed = ClaimedDelivery(
                row.id, row.edition_id, subscriber_id, address, row.kind, row.attempts, 0
            )
            job = JobLoader(context).load(session, [claimed])[0]
            found.append(
                Preview(job.edition_key, compose(composer, job), job.items, row.kind, row.status)
            )
            raise _Rollback
    except _Rollback:
        pass
    return found[0]


def _delivery_id(session: Session, edition_id: int, subscriber_id: int) -> int:
    row = store.delivery_for(session, edition_id, subscriber_id)
    if row is None:
        raise NothingToSend(
            "nothing would be sent to this address this week: it is not active, is paused, "
            "or no paper matched its topics (digest.skip_empty is on)"
        )
    return row.id
